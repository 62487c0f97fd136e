"""``skysense`` commands of the model concern."""

from __future__ import annotations

from typing import Annotated

import typer

from skysense.cli.common import JsonOpt, ParamsOpt, SetOpt, emit_json, fail, load, out


def register(app: typer.Typer) -> None:
    """Add the ``model`` group."""
    group = typer.Typer(help="Inspect SkySense model presets.", no_args_is_help=True)

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

    app.add_typer(group, name="model")
