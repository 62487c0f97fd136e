"""``skysense data``: sample scenes, chip them into shards, compute band statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skysense.cli import data_sample, data_stac
from skysense.cli.common import JsonOpt, ParamsOpt, SetOpt, console, emit_json, fail, load, out
from skysense.config import chip_settings
from skysense.core.exit_codes import ExitCode


def _chip(
    catalog: Path | None,
    out_dir: Path | None,
    params: Path | None,
    set_: list[str] | None,
    as_json: bool,
    allow_partial: bool | None = None,
) -> None:
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from skysense.core.errors import CatalogError, SkySenseError
    from skysense.data.catalog import load_catalog
    from skysense.data.chip_outcome import require_complete
    from skysense.data.chipping import chip_catalog

    cfg = load(params, set_)
    cat_path = catalog if catalog is not None else cfg.paths.catalog
    target = out_dir if out_dir is not None else cfg.paths.chips
    try:
        cat = load_catalog(cat_path)
    except CatalogError as exc:
        fail(str(exc))
    with Progress(
        TextColumn("chipping"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeElapsedColumn(),
        console=console,
        disable=as_json,
        transient=False,
    ) as bar:
        task = bar.add_task("chip", total=len(cat.locations), last="")

        def tick(res) -> None:
            state = (
                f"{res.location}: {res.chips} chips" if not res.error else f"{res.location}: FAILED"
            )
            bar.update(task, advance=1, last=state)

        try:
            summary = chip_catalog(cat, target, chip_settings(cfg), progress=tick)
        except (SkySenseError, CatalogError) as exc:
            fail(exc)
        except OSError as exc:  # merging the shards or writing the manifest: disk full, I/O error
            fail(
                f"{target}: writing the chips failed ({exc.strerror or exc}); free disk space or "
                "fix the folder and run again",
                code=ExitCode.FAILED,
            )
    result = summary.to_dict()
    result.pop("per_location", None)
    if as_json:
        emit_json(result)
    else:
        out.print(
            f"{summary.chips} chips from "
            f"{summary.locations - len(summary.failed)}/{summary.locations} "
            f"locations in {len(summary.shards)} shard(s) -> {summary.manifest} "
            f"({summary.seconds:.1f} s)",
            highlight=False,
        )
        if summary.skipped:
            out.print(
                "skipped: " + ", ".join(f"{k}={v}" for k, v in sorted(summary.skipped.items())),
                highlight=False,
            )
        if summary.invalid_dates:
            out.print(
                "unusable dates (per chip): "
                + ", ".join(f"{k}={v}" for k, v in sorted(summary.invalid_dates.items())),
                highlight=False,
            )
        for loc, err in summary.failed.items():
            console.print(f"[yellow]location {loc} failed:[/] {escape(err)}", highlight=False)
    partial_ok = cfg.data.chip.allow_partial if allow_partial is None else allow_partial
    try:
        require_complete(summary, target, allow_partial=partial_ok)
    except SkySenseError as exc:
        fail(exc)


def _stats(
    chips: Path | None,
    split: str | None,
    params: Path | None,
    set_: list[str] | None,
    as_json: bool,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from skysense.core.errors import SkySenseError
    from skysense.data.stats import compute_stats, write_stats

    cfg = load(params, set_)
    folder = chips if chips is not None else cfg.paths.chips
    with Progress(
        TextColumn("stats"), BarColumn(), MofNCompleteColumn(), console=console, disable=as_json
    ) as bar:
        task = bar.add_task("stats", total=None)
        try:
            stats = compute_stats(
                folder,
                split=split,
                bands={"s2": cfg.data.s2_bands, "s1": cfg.data.s1_bands, "hr": cfg.data.hr_bands},
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except SkySenseError as exc:
            fail(str(exc))
    path = write_stats(folder, stats)
    if as_json:
        emit_json({"stats": str(path), **stats})
        return
    out.print(f"{stats['chips']} chips -> {path}", highlight=False)
    for mod in ("hr", "s2", "s1", "dem"):
        if mod in stats:
            s = stats[mod]
            pairs = ", ".join(
                f"{b}={m:.4g}±{d:.3g}" for b, m, d in zip(s["bands"], s["mean"], s["std"])
            )
            out.print(f"  {mod} ({s['units']}): {pairs}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``data`` group."""
    group = typer.Typer(
        help="Data layer: sample scenes, STAC ingest, chips, shards, statistics.",
        no_args_is_help=True,
    )
    data_sample.register(group)
    data_stac.register(group)

    @group.command("chip")
    def chip(
        catalog: Annotated[
            Path | None,
            typer.Option("--catalog", help="scene catalog YAML (default: paths.catalog)"),
        ] = None,
        out_dir: Annotated[
            Path | None, typer.Option("--out", help="chips folder (default: paths.chips)")
        ] = None,
        allow_partial: Annotated[
            bool | None,
            typer.Option(
                "--allow-partial/--no-allow-partial",
                help="exit 0 when some locations failed (default: data.chip.allow_partial)",
            ),
        ] = None,
        params: ParamsOpt = None,
        set_: SetOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Cut aligned multi-modal time-series chips from a catalog's scenes into shards.

        Reads the catalog and its rasters (GeoTIFF/any GDAL format), and data.chip.* (size, stride,
        max_nodata_fraction, shard_size_mb, workers), data.*_bands and data.max_dates from
        params.yaml. Writes OUT/shard-*.bin (a few large files), OUT/manifest.parquet (one row per
        chip) and OUT/summary.json (chips, skipped chips by reason, failed locations with errors).
        A failed location fails the command (exit 5, after the summary is written) unless
        --allow-partial (every location failed: exit 5 regardless); no chip because every chip was
        skipped exits 2; a failed write of the shards or manifest (disk full) exits 3.
        """
        _chip(catalog, out_dir, params, set_, as_json, allow_partial)

    @group.command("stats")
    def stats(
        chips: Annotated[
            Path | None, typer.Option("--chips", help="chips folder (default: paths.chips)")
        ] = None,
        split: Annotated[
            str | None,
            typer.Option("--split", help="pretrain (default) or heldout; 'all' for every chip"),
        ] = "pretrain",
        params: ParamsOpt = None,
        set_: SetOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Per-band mean/std per modality over the valid pixels of the chips.

        Reads CHIPS/manifest.parquet and the shards; writes CHIPS/stats.json (S2 reflectance,
        S1 dB, HR as stored, DEM metres), used by the dataset to normalise.
        """
        _stats(chips, None if split == "all" else split, params, set_, as_json)

    app.add_typer(group, name="data")
