"""``skysense`` commands of the validate concern: ``skysense validate``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from skysense.cli.common import JsonOpt, ParamsOpt, SetOpt, console, emit_json, fail, load, out
from skysense.config import ALERT_WEBHOOK_ENV


def _print_summary(summary: dict[str, Any]) -> None:
    """A short rich table: accepted/quarantined per level and failing checks."""
    from rich.table import Table

    table = Table(title="validation", show_edge=False)
    for col in ("level", "total", "accepted", "quarantined"):
        table.add_column(col, justify="left" if col == "level" else "right")
    for level in ("rasters", "acquisitions", "locations", "chips"):
        counts = summary.get(level)
        if counts:
            table.add_row(
                level, str(counts["total"]), str(counts["accepted"]), str(counts["quarantined"])
            )
    out.print(table)
    failing = Table(title="failing checks", show_edge=False)
    for col in ("table", "check", "severity", "failed"):
        failing.add_column(col, justify="right" if col == "failed" else "left")
    rows = 0
    for table_name, checks in summary.get("expectations", {}).items():
        for check, c in checks.items():
            if c["failed"]:
                failing.add_row(table_name, check, c["severity"], str(c["failed"]))
                rows += 1
    if rows:
        out.print(failing)
    files = summary.get("files", {})
    out.print(
        f"quarantine: {files.get('quarantine')}\naccepted catalog: "
        f"{files.get('accepted_catalog')}\n"
        f"data docs: {files.get('data_docs')}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add this concern's commands to the app."""

    @app.command("validate")
    def validate(
        catalog: Annotated[
            Path | None, typer.Option("--catalog", help="scene catalog (default: paths.catalog)")
        ] = None,
        out_dir: Annotated[
            Path | None, typer.Option("--out", help="report folder (default: paths.validation)")
        ] = None,
        chips: Annotated[
            Path | None, typer.Option("--chips", help="also validate the chips of this folder")
        ] = None,
        params: ParamsOpt = None,
        set_: SetOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Profile and validate the catalog's rasters with great-expectations; quarantine bad items.

        Reads the catalog (and --chips), writes validation.json, quarantine.parquet,
        profiles.parquet, location_profiles.parquet (chip_profiles.parquet with --chips),
        accepted_catalog.yaml, a GX project (gx/) and Data Docs (data_docs/) in --out. Originals are
        never modified. Exits non-zero when fewer than
        validation.min_accepted locations pass or the catalog is unusable.
        """
        from skysense.core.errors import ValidationFailed
        from skysense.data.raster_access import RasterAccessPolicy
        from skysense.validation.gate import ValidationReport, validate_catalog

        cfg = load(params, set_)
        if os.environ.get(ALERT_WEBHOOK_ENV):  # failed checkpoints post to the alerts' receiver
            cfg.validation.failure_webhook = os.environ[ALERT_WEBHOOK_ENV]
        catalog_path = catalog or cfg.paths.catalog
        target = out_dir or cfg.paths.validation
        try:
            with console.status("profiling and validating rasters"):
                report = validate_catalog(
                    catalog_path,
                    target,
                    cfg.validation,
                    chips_dir=chips,
                    access=RasterAccessPolicy.from_config(cfg.data),
                )
        except ValidationFailed as exc:
            if isinstance(exc.report, ValidationReport):
                if as_json:
                    emit_json(exc.report.summary)
                else:
                    _print_summary(exc.report.summary)
            from rich.markup import escape

            fail(escape(str(exc)))  # YAML errors quote "[", which rich would read as markup
            return
        if as_json:
            emit_json(report.summary)
        else:
            _print_summary(report.summary)
