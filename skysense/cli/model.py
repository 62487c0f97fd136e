"""``skysense`` commands of the model concern."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from skysense.cli.common import JsonOpt, ParamsOpt, SetOpt, emit_json, fail, load, out


def register(app: typer.Typer) -> None:
    """Add the ``model`` group."""
    group = typer.Typer(
        help="Inspect SkySense model presets; import the official weights.", no_args_is_help=True
    )

    @group.command("info")
    def info(
        preset: Annotated[
            str | None, typer.Option("--preset", help="preset name (default: model.preset)")
        ] = None,
        params: ParamsOpt = None,
        set_: SetOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Parameters per component of a preset, built on the meta device (reads params.yaml for
        the default preset and model.overrides; writes nothing).
        """
        from skysense.core.errors import PresetError
        from skysense.models.param_table import parameter_table

        overrides: dict = {}
        if preset is None:
            cfg = load(params, set_)
            preset, overrides = cfg.model.preset, dict(cfg.model.overrides)
        try:
            table = parameter_table(preset, **overrides)
        except PresetError as exc:
            fail(str(exc))
            return
        if as_json:
            emit_json(table)
            return
        from rich.table import Table

        t = Table(title=f"{preset}: parameters per component (meta device)")
        t.add_column("component")
        t.add_column("parameters", justify="right")
        t.add_column("millions", justify="right")
        t.add_column("in total", justify="center")
        for row in table["rows"]:
            if row["in_total"]:
                t.add_row(row["component"], f"{row['params']:,}", f"{row['millions']:,.2f}", "yes")
        t.add_row(
            "[bold]total[/]",
            f"[bold]{table['total']:,}[/]",
            f"[bold]{table['total_millions']:,.2f}[/]",
            "",
        )
        for row in table["rows"]:
            if not row["in_total"]:
                t.add_row(row["component"], f"{row['params']:,}", f"{row['millions']:,.2f}", "no")
        out.print(t)
        groups = ", ".join(f"{k} {v / 1e6:,.2f}M" for k, v in table["groups"].items())
        out.print(f"groups: {groups}", highlight=False)
        if "published_millions" in table:
            pub = table["published_millions"]
            dev = table["deviation_percent"]
            out.print(
                "published (SkySense, CVPR 2024): "
                + ", ".join(f"{k} {pub[k]:,.2f}M ({dev[k]:+.2f}%)" for k in pub),
                highlight=False,
            )

    @group.command("import-official")
    def import_official_cmd(
        paths: Annotated[
            list[str],
            typer.Argument(
                help="release files: the combined state dict, or the per-module files (HR "
                "backbone, S2 and S1 ViTs, the two lifting heads, the fusion); PART=PATH names a "
                "file's part (hr, s2, s1, s2_head, s1_head, fusion, ctpe, combined)"
            ),
        ],
        out_dir: Annotated[Path, typer.Option("--out", help="export folder to write")],
        preset: Annotated[str, typer.Option("--preset", help="preset of the release")] = (
            "skysense-huge"
        ),
        stats: Annotated[
            Path | None,
            typer.Option("--stats", help="a chips stats.json to record as the normalisation"),
        ] = None,
        rgb: Annotated[
            bool,
            typer.Option(
                "--rgb/--rgbn",
                help="HR input: the release's RGB patch embedding as is, or RGBN (red filters "
                "copied for N, the platform's 4-band HR chips)",
            ),
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Import the official SkySense weights (either form) as an export that evaluate,
        register and predict read: every key mapped strictly, non-encoder keys ignored by name
        with a reason, no modality embedding, DEM token or geo-context prototypes (reads the
        release files; writes OUT/model.safetensors and OUT/config.json).
        """
        from skysense.models.official_checkpoint import CheckpointMappingError
        from skysense.models.official_release import import_official

        stats_obj = None
        if stats is not None:
            try:
                stats_obj = json.loads(stats.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                fail(f"{stats}: cannot read the stats ({exc}); give a chips stats.json")
                return
        try:
            export, report = import_official(
                paths,
                out_dir,
                preset=preset,
                overrides={"hr_in_chans": 3} if rgb else {},
                stats=stats_obj,
            )
        except CheckpointMappingError as exc:
            fail(str(exc))
            return
        summary = {
            "export": str(export),
            "loaded": len(report.loaded),
            "adapted": report.adapted,
            "ignored": report.ignored,
        }
        if as_json:
            emit_json(summary)
            return
        out.print(f"imported {len(report.loaded)} tensors into {export}", highlight=False)
        for key, note in report.adapted.items():
            out.print(f"  adapted {key}: {note}", highlight=False)
        reasons: dict[str, int] = {}
        for reason in report.ignored.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        for reason, n in reasons.items():
            out.print(f"  ignored {n} key(s): {reason}", highlight=False)

    app.add_typer(group, name="model")
