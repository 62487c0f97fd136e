"""Sentinel-2 ``.SAFE`` product folders as catalog acquisitions (``safe: path``).

A ``.SAFE`` folder (L2A, or L1C) is read through its band files and its product metadata:

- band files: ``GRANULE/*/IMG_DATA/R10m|R20m|R60m/*_<band>_<res>m.jp2`` for L2A (each band at the
  finest resolution the product has; ``SCL`` is the cloud mask, classes
  :data:`~skysense.core.sensors.SCL_CLOUD_CLASSES` unless the catalog's ``mask_classes`` says
  otherwise), ``GRANULE/*/IMG_DATA/*_<band>.jp2`` for L1C (no mask);
- ``MTD_MSIL2A.xml`` / ``MTD_MSIL1C.xml``: the acquisition date (``PRODUCT_START_TIME``), the
  processing baseline (``PROCESSING_BASELINE``), the quantification value and the DN offsets
  (``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET`` per ``band_id``, mapped to band names through
  ``Spectral_Information_List``). The offset follows :mod:`skysense.data.products.sentinel2`: the
  metadata's offset list, else the baseline's rule, else, for products acquired before
  2022-01-25, none; never guessed after that.

Only files inside the folder are used (a band file linking outside it is refused), each opened
later under the raster access policy like any catalog raster. XML is parsed with the standard
library (expat, which refuses entity expansion bombs) and only when at most 16 MB.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from skysense.core.errors import RasterReadError
from skysense.core.sensors import S2_PRODUCT_BANDS, SCL_CLOUD_CLASSES
from skysense.data.catalog import Acquisition
from skysense.data.products.sentinel2 import (
    QUANTIFICATION,
    baseline_from_product_id,
    format_baseline,
    offset_for_baseline,
    offset_problem,
    parse_baseline,
)

MAX_METADATA_BYTES = 16 * 2**20
_L2A_BAND = re.compile(r"_(B\d[\dA]|SCL)_(\d{2})m\.(jp2|tif)$", re.IGNORECASE)
_L1C_BAND = re.compile(r"_(B\d[\dA])\.(jp2|tif)$", re.IGNORECASE)
_NAME_DATE = re.compile(r"_MSIL(?:1C|2A)_(\d{8})T\d{6}_")


class SafeProductError(RasterReadError):
    """A ``.SAFE`` folder that cannot be read as a Sentinel-2 product (layout or metadata)."""


@dataclass(frozen=True)
class SafeProduct:
    """What a ``.SAFE`` folder holds.

    Attributes:
        path: the folder.
        level: ``L2A`` or ``L1C``.
        date: acquisition date (metadata, else the folder name).
        baseline: processing baseline (``"04.00"``), None when the product does not say.
        offset: DN offset of every band (-1000 from baseline 04.00 on), None when unknown.
        bands: band name (``B02`` ... ``B12``) -> file, at the finest resolution present.
        scl: the L2A scene classification file, None for L1C.
    """

    path: Path
    level: str
    date: dt.date | None
    baseline: str | None
    offset: float | None
    bands: dict[str, Path] = field(default_factory=dict)
    scl: Path | None = None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _band_name(text: str) -> str | None:
    """``B4``/``B04``/``B8A`` -> the sensor band name, or None."""
    m = re.fullmatch(r"B0?(\d{1,2}|8A)", text.strip().upper())
    if m is None:
        return None
    num = m.group(1)
    name = "B8A" if num == "8A" else f"B{int(num):02d}"
    return name if name in S2_PRODUCT_BANDS else None


def _metadata(folder: Path) -> tuple[str, Path]:
    for level in ("L2A", "L1C"):
        p = folder / f"MTD_MSI{level}.xml"
        if p.is_file():
            return level, p
    raise SafeProductError(
        f"{folder}: no MTD_MSIL2A.xml or MTD_MSIL1C.xml; a 'safe:' entry names the unzipped "
        "Sentinel-2 product folder (S2?_MSIL2A_....SAFE) that holds it"
    )


def _parse(meta: Path) -> ET.Element:
    if meta.stat().st_size > MAX_METADATA_BYTES:
        raise SafeProductError(
            f"{meta}: larger than {MAX_METADATA_BYTES // 2**20} MB; not product metadata"
        )
    try:
        return ET.parse(meta).getroot()
    except ET.ParseError as exc:
        raise SafeProductError(f"{meta}: not valid XML ({exc}); re-download the product") from None


def _offsets(root: ET.Element, level: str, meta: Path) -> tuple[float | None, float | None]:
    """(common DN offset or None, quantification or None) from the metadata."""
    ids: dict[str, str] = {}
    for el in root.iter():
        if _local(el.tag) == "Spectral_Information":
            band = _band_name(el.get("physicalBand", ""))
            if band is not None and el.get("bandId") is not None:
                ids[el.get("bandId", "")] = band
    tag = "BOA_ADD_OFFSET" if level == "L2A" else "RADIO_ADD_OFFSET"
    qtag = "BOA_QUANTIFICATION_VALUE" if level == "L2A" else "QUANTIFICATION_VALUE"
    offsets: dict[str, float] = {}
    quant = None
    for el in root.iter():
        name = _local(el.tag)
        if name == tag:
            bid = el.get("band_id", "")
            band = ids.get(bid) or (
                S2_PRODUCT_BANDS[int(bid)] if bid.isdigit() and int(bid) < 13 else bid
            )
            try:
                offsets[band] = float((el.text or "").strip())
            except ValueError:
                raise SafeProductError(f"{meta}: {tag} of band {band} is not a number") from None
        elif name == qtag and quant is None:
            try:
                quant = float((el.text or "").strip())
            except ValueError:
                raise SafeProductError(f"{meta}: {qtag} is not a number") from None
    if not offsets:
        return None, quant
    values = set(offsets.values())
    if len(values) != 1:
        raise SafeProductError(
            f"{meta}: the bands have different {tag} values ({sorted(values)}); a catalog "
            "acquisition holds one DN offset: list the bands as separate acquisitions"
        )
    return values.pop(), quant


def _text(root: ET.Element, tag: str) -> str | None:
    for el in root.iter():
        if _local(el.tag) == tag and el.text and el.text.strip():
            return el.text.strip()
    return None


def _band_files(folder: Path, level: str) -> tuple[dict[str, Path], Path | None]:
    base = folder.resolve()
    found: dict[str, tuple[float, Path]] = {}
    pattern = "GRANULE/*/IMG_DATA/R*m/*" if level == "L2A" else "GRANULE/*/IMG_DATA/*"
    for p in sorted(folder.glob(pattern)):
        m = (_L2A_BAND if level == "L2A" else _L1C_BAND).search(p.name)
        if m is None or not p.is_file():
            continue
        if not p.resolve().is_relative_to(base):
            raise SafeProductError(
                f"{p}: links outside its product folder {folder}; copy the file in"
            )
        name = m.group(1).upper()
        band = "SCL" if name == "SCL" else _band_name(name)
        if band is None:
            continue
        res = float(m.group(2)) if level == "L2A" else 0.0
        if band not in found or res < found[band][0]:
            found[band] = (res, p)
    scl = found.pop("SCL", (0.0, None))[1]
    return {b: p for b, (_, p) in sorted(found.items())}, scl


def read_safe(path: str | Path) -> SafeProduct:
    """Read a Sentinel-2 ``.SAFE`` folder's band files and metadata.

    Raises:
        SafeProductError: no such folder, no metadata, no band files, unreadable metadata, a
            quantification other than 10000 or per-band offsets that differ.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise SafeProductError(
            f"{folder}: not a folder; 'safe:' names an unzipped .SAFE product folder"
        )
    level, meta = _metadata(folder)
    root = _parse(meta)
    offset, quant = _offsets(root, level, meta)
    if quant is not None and quant != QUANTIFICATION:
        raise SafeProductError(
            f"{meta}: quantification value {quant:g}, not {QUANTIFICATION:g}; only the standard "
            "Sentinel-2 scaling (reflectance = (DN + offset) / 10000) is supported"
        )
    baseline_text = _text(root, "PROCESSING_BASELINE") or baseline_from_product_id(folder.name)
    version = parse_baseline(baseline_text)
    baseline = format_baseline(version) if version else None
    if offset is None:
        offset = offset_for_baseline(baseline)
    date = None
    start = _text(root, "PRODUCT_START_TIME") or _text(root, "DATATAKE_SENSING_START")
    if start:
        try:
            date = dt.datetime.fromisoformat(start).date()
        except ValueError:
            date = None
    if date is None:
        m = _NAME_DATE.search(folder.name)
        date = dt.datetime.strptime(m.group(1), "%Y%m%d").date() if m else None
    if offset is None and offset_problem(date, None, str(folder)) is None:
        offset = 0.0 if date is not None else None
    bands, scl = _band_files(folder, level)
    if not bands:
        raise SafeProductError(
            f"{folder}: no band files under GRANULE/*/IMG_DATA; the folder is incomplete, "
            "re-download or unzip the product again"
        )
    return SafeProduct(folder, level, date, baseline, offset, bands, scl)


def safe_acquisition(acq: Acquisition, root: Path) -> Acquisition:
    """The plain acquisition a ``safe:`` entry stands for: its band files, SCL mask, date, offset.

    What the catalog states wins: ``date``, ``offset``, ``mask`` and ``mask_classes``. An
    acquisition without ``safe`` is returned unchanged.

    Raises:
        SafeProductError: the folder cannot be read (see :func:`read_safe`).
    """
    if acq.safe is None:
        return acq
    folder = acq.safe if acq.safe.is_absolute() else root / acq.safe
    product = read_safe(folder)
    mask = acq.mask if acq.mask is not None else product.scl
    classes = acq.mask_classes
    if classes is None and acq.mask is None and product.scl is not None:
        classes = list(SCL_CLOUD_CLASSES)
    return acq.model_copy(
        update={
            "safe": None,
            "bands": dict(product.bands),
            "mask": mask,
            "mask_classes": classes,
            "date": acq.date if acq.date is not None else product.date,
            "offset": acq.offset if acq.offset is not None else product.offset,
            "processing_baseline": acq.processing_baseline or product.baseline,
        }
    )
