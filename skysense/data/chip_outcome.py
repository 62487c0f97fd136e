"""Whether a chipping run may count as done: failed locations make its output partial.

A location can fail while chipping for a reason validation could not see (a raster truncated or
replaced after validation, a full disk, a bug). The other locations' chips are still written,
with ``summary.json`` listing the failures; but a partial set must not pass for the whole one
(DVC would record it, training would go on without those places), unless the user accepts it:
``--allow-partial`` or ``data.chip.allow_partial: true``.
"""

from __future__ import annotations

from pathlib import Path

from skysense.core.errors import NoValidDataError, PartialResultError
from skysense.data.chipping import ChipSummary

MAX_LISTED = 5


def _first_line(text: str, limit: int = 240) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else "unknown error"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def failures_text(summary: ChipSummary) -> str:
    """The failed locations as ``id: first line of the error``, the first few of them."""
    items = sorted(summary.failed.items())
    shown = "; ".join(f"{loc}: {_first_line(err)}" for loc, err in items[:MAX_LISTED])
    more = len(items) - MAX_LISTED
    return shown + (f"; and {more} more" if more > 0 else "")


def require_complete(
    summary: ChipSummary, out_dir: str | Path, allow_partial: bool = False
) -> None:
    """Raise unless the chipping run gave chips from every location (or partial is allowed).

    Args:
        summary: the run's summary (already written to ``out_dir/summary.json``).
        out_dir: the chips folder, named in the message.
        allow_partial: accept a run where some (not all) locations failed.

    Raises:
        PartialResultError: some locations failed and ``allow_partial`` is false, or every
            location failed (no chip at all, whatever ``allow_partial``).
        NoValidDataError: no location failed but no chip was written (every chip skipped).
    """
    summary_file = Path(out_dir) / "summary.json"
    if summary.failed and (summary.chips == 0 or not allow_partial):
        written = (
            f"so {out_dir} holds a partial set ({summary.chips} chips)"
            if summary.chips
            else "and no chip was written"
        )
        accept = (
            "Fix them and run again, or accept the partial set with --allow-partial "
            "(data.chip.allow_partial: true)"
            if summary.chips
            else "Fix them and run again"
        )
        raise PartialResultError(
            f"{len(summary.failed)} of {summary.locations} location(s) failed, {written}: "
            f"{failures_text(summary)}. {accept}; details in {summary_file}"
        )
    if summary.chips == 0:
        why = (
            "every chip was skipped: "
            + ", ".join(f"{k}={v}" for k, v in sorted(summary.skipped.items()))
            if summary.skipped
            else "the catalog has no location"
        )
        raise NoValidDataError(f"{out_dir}: no chip was written ({why}); see {summary_file}")
