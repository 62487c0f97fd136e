"""``skysense data stac``: a STAC snapshot (saved, or searched now) into a scene catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skysense.cli.common import JsonOpt, ParamsOpt, SetOpt, console, emit_json, fail, load, out


def _floats(text: str | None, what: str, n: int) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != n:
        fail(
            f"{what} {text!r}: give {n} comma-separated numbers (west,south,east,north in degrees)"
        )
    return values


def register(group: typer.Typer) -> None:
    """Add ``stac`` to the ``data`` group."""

    @group.command("stac")
    def stac(
        items: Annotated[
            Path | None,
            typer.Option("--items", help="saved STAC ItemCollection (JSON, or .ndjson items)"),
        ] = None,
        api: Annotated[
            str | None,
            typer.Option(
                "--api", help="STAC API URL to search (the result is saved as OUT/items.json first)"
            ),
        ] = None,
        collections: Annotated[
            list[str] | None,
            typer.Option(
                "--collections", help="collection ids to search (repeatable or comma-separated)"
            ),
        ] = None,
        bbox: Annotated[
            str | None,
            typer.Option(
                "--bbox",
                help="area west,south,east,north in degrees (items outside are skipped)",
            ),
        ] = None,
        datetime: Annotated[
            str | None,
            typer.Option(
                "--datetime", help="search instant or interval, e.g. 2023-01-01/2023-12-31"
            ),
        ] = None,
        max_items: Annotated[
            int | None,
            typer.Option("--max-items", help="most items to fetch (default: data.stac.max_items)"),
        ] = None,
        out_dir: Annotated[
            Path | None, typer.Option("--out", help="output folder (default: paths.stac)")
        ] = None,
        download: Annotated[
            bool | None,
            typer.Option(
                "--download/--no-download",
                help="copy remote assets into OUT/assets (default: data.stac.download)",
            ),
        ] = None,
        params: ParamsOpt = None,
        set_: SetOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """A scene catalog from STAC items: OUT/catalog.yaml, OUT/items.json, OUT/skipped.parquet.

        Reads a saved ItemCollection (--items) or searches a STAC API with pystac-client
        (--api, --collections, --bbox, --datetime) and saves the result as OUT/items.json first,
        so a rerun is reproducible. Reads data.stac (location_m, required_modalities,
        max_cloud_cover, rules: collection/platform -> modality), data.*_bands,
        validation.scl_cloud_classes and data.remote.allowed_hosts from params.yaml. Items that
        cannot be used are listed with their reason in OUT/skipped.parquet; the others ingest.
        Exit 2 when the snapshot gives no location (the skipped rows say why).
        """
        from skysense.config import stac_settings
        from skysense.core.errors import SkySenseError
        from skysense.data.stac.ingest import SNAPSHOT, ingest_snapshot
        from skysense.data.stac.snapshot import search_snapshot

        if (items is None) == (api is None):
            fail(
                "give exactly one of --items FILE (a saved snapshot) or --api URL (search and "
                "save one)"
            )
        overrides = list(set_ or [])
        if download is not None:
            overrides.append(f"data.stac.download={str(download).lower()}")
        cfg = load(params, overrides)
        settings = stac_settings(cfg)
        target = out_dir if out_dir is not None else cfg.paths.stac
        area = _floats(bbox, "--bbox", 4)
        colls = [c for v in (collections or []) for c in v.split(",") if c]
        try:
            if api is not None:
                Path(target).mkdir(parents=True, exist_ok=True)
                snapshot = search_snapshot(
                    api,
                    Path(target) / SNAPSHOT,
                    colls or None,
                    area,
                    datetime,
                    max_items or cfg.data.stac.max_items,
                )
            else:
                snapshot = items  # type: ignore[assignment]
            result = ingest_snapshot(
                snapshot,
                target,
                settings,
                area=area,  # type: ignore[arg-type]
            )
        except SkySenseError as exc:
            fail(exc)
        summary = result.to_dict()
        if as_json:
            emit_json(summary)
        else:
            acq = ", ".join(f"{m}={n}" for m, n in sorted(result.acquisitions.items())) or "none"
            out.print(
                f"{result.items} items: {result.used_items} used, {sum(result.skipped.values())} "
                f"skipped, {result.unused_items} cover no location -> {result.locations} locations "
                f"({acq} acquisitions) in {result.seconds:.1f} s\ncatalog: {result.catalog}\n"
                f"snapshot: {result.snapshot}\nskipped: {result.skipped_file}",
                highlight=False,
                markup=False,
            )
            if result.skipped:
                out.print(
                    "skipped: " + ", ".join(f"{k}={v}" for k, v in result.skipped.items()),
                    highlight=False,
                    markup=False,
                )
        if result.catalog is None:
            console.print(
                f"[bold red]error:[/] no location: no {cfg.data.stac.location_m:g} m cell is "
                "covered by every required modality "
                f"({', '.join(cfg.data.stac.required_modalities)}); "
                f"see {result.skipped_file} for the items skipped and why",
                highlight=False,
            )
            raise typer.Exit(2)
