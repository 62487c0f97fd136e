"""``skysense``: the one command-line surface; one command per pipeline stage.

Each concern registers its commands from its own module (``skysense/cli/<concern>.py``) so the
library stays importable without typer and ``skysense --help`` stays fast (imports are lazy).
"""

from __future__ import annotations

from skysense.cli.process_env import set_process_defaults

set_process_defaults()  # the console entry point: before typer, torch or any tool is imported

import typer

from skysense.cli import (
    config_cmd,
    data,
    evaluate,
    finetune,
    model,
    pipeline,
    predict,
    registry,
    train,
    validate,
)
from skysense.core.exit_codes import exit_code_epilog

app = typer.Typer(
    name="skysense",
    help=(
        "SkySense platform: validate imagery, pre-train the multi-modal foundation model with "
        "DeepSpeed, evaluate, register and promote in MLflow, and serve GeoTIFF predictions."
    ),
    epilog=exit_code_epilog(),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _module in (
    config_cmd,
    data,
    model,
    validate,
    train,
    evaluate,
    finetune,
    registry,
    predict,
    pipeline,
):
    _module.register(app)


def main() -> None:  # pragma: no cover - console entry point
    """Console entry point."""
    app()
