"""Sentinel-2 digital numbers and reflectance: the per-acquisition DN offset.

From processing baseline 04.00 (products since 2022-01-25, and older products reprocessed with
it, e.g. Collection-1 with 05.xx) Sentinel-2 L1C and L2A digital numbers carry an offset:
``reflectance = (DN + offset) / 10000`` with ``offset = -1000`` (``RADIO_ADD_OFFSET`` in L1C,
``BOA_ADD_OFFSET`` in L2A metadata). Earlier baselines have no offset. Reading such a scene with
offset 0 makes it about 0.1 too bright.

The offset is a per-acquisition value (catalog ``offset``), recorded where it is known:

- a STAC item's ``raster:bands`` ``offset``/``scale`` (reflectance units, e.g. -0.1 and 0.0001
  give -1000 DN), else its ``s2:processing_baseline``;
- a ``.SAFE`` folder's ``MTD_MSIL2A.xml`` / ``MTD_MSIL1C.xml``
  (:mod:`skysense.data.products.sentinel2_safe`);
- a catalog written by hand states it (``offset: -1000`` or ``offset: 0``).

It is never guessed for a date on or after :data:`BASELINE_04_00_DATE`: Sentinel-2 DN of such a
date whose offset is unknown are refused (the reader raises, validation quarantines with the
check ``s2_offset_known``, STAC ingest skips the item), naming the fix. Before that date no
product had been processed with 04.00 at the time of acquisition, so an unknown offset is 0
(original processing); a reprocessed product states its baseline.
"""

from __future__ import annotations

import datetime as dt
import re

BASELINE_04_00_DATE = dt.date(2022, 1, 25)
"""First acquisitions processed with baseline 04.00 (the DN offset of -1000)."""
OFFSET_FROM_04_00 = -1000.0
"""DN offset of processing baselines 04.00 and later (``BOA_ADD_OFFSET``/``RADIO_ADD_OFFSET``)."""
QUANTIFICATION = 10000.0
"""DN per unit reflectance (``BOA_QUANTIFICATION_VALUE``/``QUANTIFICATION_VALUE``)."""

_BASELINE = re.compile(r"^\s*N?(\d{1,2})\.?(\d{2})\s*$")


def parse_baseline(text: str | float | None) -> tuple[int, int] | None:
    """``"04.00"``, ``"N0400"``, ``"0400"`` or ``4.0`` -> ``(4, 0)``; None if absent/unreadable."""
    if text is None:
        return None
    if isinstance(text, float):
        text = f"{text:05.2f}"
    m = _BASELINE.match(str(text))
    return (int(m.group(1)), int(m.group(2))) if m else None


def format_baseline(version: tuple[int, int]) -> str:
    """``(4, 0)`` -> ``"04.00"``."""
    return f"{version[0]:02d}.{version[1]:02d}"


def offset_for_baseline(baseline: str | float | None) -> float | None:
    """The DN offset of a processing baseline: -1000 from 04.00 on, else 0; None when unknown."""
    version = parse_baseline(baseline)
    if version is None:
        return None
    return OFFSET_FROM_04_00 if version >= (4, 0) else 0.0


def baseline_from_product_id(product_id: str) -> str | None:
    """The baseline of a Sentinel-2 product name (``S2B_MSIL2A_..._N0400_...`` -> ``"04.00"``).

    Only the ``_Nxxyy_`` field of a product name (compact naming convention) counts.
    """
    m = re.search(r"_MSIL(?:1C|2A)_\d{8}T\d{6}_N(\d{2})(\d{2})_", product_id)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def offset_problem(date: dt.date | None, offset: float | None, where: str) -> str | None:
    """Why Sentinel-2 DN acquired on ``date`` with DN ``offset`` cannot be read, or None.

    Args:
        date: the acquisition date (None: unknown; no rule applies).
        offset: the recorded DN offset (None: not recorded).
        where: what to name in the message (a file, an acquisition, a STAC item).
    """
    if offset is not None or date is None or date < BASELINE_04_00_DATE:
        return None
    return (
        f"{where}: Sentinel-2 digital numbers acquired on {date.isoformat()} (on or after "
        f"{BASELINE_04_00_DATE.isoformat()}, processing baseline 04.00) with no recorded DN "
        "offset; reflectance = (DN + offset) / 10000 and reading it with offset 0 would make it "
        "about 0.1 too bright. State the offset of the acquisition in the catalog: "
        "'offset: -1000' for products of baseline 04.00 or later (BOA_ADD_OFFSET in "
        "MTD_MSIL2A.xml), 'offset: 0' for harmonised data (offset already applied), or list "
        "the product's .SAFE folder with 'safe:' so its metadata is read"
    )


def effective_offset(date: dt.date | None, offset: float | None) -> float:
    """The DN offset to apply: the recorded one, else 0 (where :func:`offset_problem` is None)."""
    return 0.0 if offset is None else float(offset)
