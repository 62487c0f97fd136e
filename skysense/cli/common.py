"""Options and error handling shared by every command."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

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

F = TypeVar("F", bound=Callable[..., Any])


def load(params: Path | None, overrides: list[str] | None):
    """Resolved configuration, or a clean exit with the config error."""
    from skysense.config import ConfigError, load_config

    try:
        return load_config(params, overrides)
    except ConfigError as exc:
        fail(str(exc))


def fail(message: str, code: int = 2) -> None:
    """Print an error for the user (no traceback, URI credentials stripped); exit non-zero."""
    from rich.markup import escape

    from skysense.credentials import strip_credentials

    console.print(f"[bold red]error:[/] {escape(strip_credentials(message))}", highlight=False,
                  markup=True)
    raise typer.Exit(code)


def emit_json(obj: Any) -> None:
    """Print an object as JSON on stdout (URI credentials stripped from every string)."""
    from skysense.credentials import strip_credentials, strip_credentials_in

    text = json.dumps(strip_credentials_in(obj), indent=2, default=str)
    sys.stdout.write(strip_credentials(text) + "\n")


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that are the user's to fix: printed without a traceback."""
    from skysense.errors import SkySenseError

    return (SkySenseError,)
