"""``skysense`` commands of the pipeline concern."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this concern's commands to the app."""
