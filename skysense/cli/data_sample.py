"""``skysense data sample``: write the bundled synthetic multi-modal sample."""

from __future__ import annotations

import typer


def register(group: typer.Typer) -> None:
    """Add ``sample`` to the ``data`` group."""
