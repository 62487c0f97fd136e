"""``skysense config``: show the resolved configuration."""

from __future__ import annotations

import typer

from skysense.cli.common import JsonOpt, ParamsOpt, SetOpt, emit_json, load, out


def register(app: typer.Typer) -> None:
    """Add the ``config`` group."""
    group = typer.Typer(help="Inspect the configuration (params.yaml + overrides).", no_args_is_help=True)

    @group.command("show")
    def show(params: ParamsOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
        """Print the resolved configuration (reads params.yaml and --set overrides; writes nothing)."""
        from skysense.config import dump_config

        cfg = load(params, set_)
        if as_json:
            emit_json(cfg.model_dump(mode="json"))
        else:
            out.print(dump_config(cfg), highlight=False, markup=False)

    app.add_typer(group, name="config")
