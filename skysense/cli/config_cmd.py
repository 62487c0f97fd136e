"""``skysense config``: show the resolved configuration."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from skysense.cli.common import JsonOpt, ParamsOpt, SetOpt, emit_json, fail, load


def register(app: typer.Typer) -> None:
    """Add the ``config`` group."""
    group = typer.Typer(
        help="Inspect the configuration (params.yaml + overrides).", no_args_is_help=True
    )

    @group.command("show")
    def show(
        params: ParamsOpt = None,
        set_: SetOpt = None,
        defaults: Annotated[
            bool,
            typer.Option(
                "--defaults",
                help="start from the embedded defaults, not params.yaml "
                "(`skysense config show --defaults > params.yaml` writes a complete params file)",
            ),
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Print the resolved configuration (reads params.yaml and --set overrides; writes nothing).

        The YAML printed is a complete params file, written as is (no line wrapping).
        """
        from skysense.config import config_from_dict, dump_config
        from skysense.core.errors import ConfigError

        if defaults and params is not None:
            fail("--defaults and --params exclude each other: pick one")
        if defaults:
            from skysense.config import apply_overrides

            try:
                cfg = config_from_dict(apply_overrides({}, set_), "<defaults>")
            except ConfigError as exc:
                fail(str(exc))
        else:
            cfg = load(params, set_)
        if as_json:
            emit_json(cfg.model_dump(mode="json"))
        else:
            sys.stdout.write(dump_config(cfg))  # not rich: it would wrap long values

    app.add_typer(group, name="config")
