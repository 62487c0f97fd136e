"""Options and error handling shared by every command."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from skysense.core.exit_codes import ExitCode

console = Console(stderr=True)
out = Console()

ParamsOpt = Annotated[
    Path | None,
    typer.Option("--params", help="params file (default: ./params.yaml, else embedded defaults)"),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="override a setting: section.key=value (repeatable)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON on stdout")]
TrackingUriOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow store (default: MLFLOW_TRACKING_URI, else registry.tracking_uri)",
    ),
]
NoMlflowOpt = Annotated[bool, typer.Option("--no-mlflow", help="do not log to MLflow")]

F = TypeVar("F", bound=Callable[..., Any])


def load(params: Path | None, overrides: list[str] | None):
    """Resolved configuration (also the process's raster access policy), or a clean exit."""
    from skysense.config import load_config
    from skysense.core.errors import ConfigError
    from skysense.data.raster_access import configure

    try:
        cfg = load_config(params, overrides)
    except ConfigError as exc:
        fail(str(exc))
    configure(cfg.data)  # every raster this command opens follows data.max_raster_*, data.remote
    return cfg


def fail(message: str | BaseException, code: int | None = None) -> None:
    """Print an error for the user (no traceback) and exit non-zero.

    Args:
        message: the text, or a named error (its text is printed, its ``exit_code`` used).
        code: the exit status; default: the error's ``exit_code``, else 2 (usage or input).
    """
    from rich.markup import escape

    from skysense.core.credentials import strip_credentials

    if code is None:
        code = int(getattr(message, "exit_code", ExitCode.USAGE))
    text = strip_credentials(str(message))  # a URI's user:password@ is never printed
    # soft_wrap: one line however long (a log or a caller greps it), the terminal wraps it
    console.print(
        f"[bold red]error:[/] {escape(text)}", highlight=False, markup=True, soft_wrap=True
    )
    raise typer.Exit(code)


def emit_json(obj: Any) -> None:
    """Print an object as JSON on stdout (URI credentials stripped from every string)."""
    from skysense.core.credentials import strip_credentials, strip_credentials_in

    text = json.dumps(strip_credentials_in(obj), indent=2, default=str)
    sys.stdout.write(strip_credentials(text) + "\n")


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that are the user's to fix: printed without a traceback."""
    from skysense.core.errors import SkySenseError

    return (SkySenseError,)
