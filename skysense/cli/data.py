"""``skysense data``: sample scenes, chip them into shards, compute band statistics."""

from __future__ import annotations

import typer

from skysense.cli import data_sample


def register(app: typer.Typer) -> None:
    """Add the ``data`` group."""
    group = typer.Typer(help="Data layer: sample scenes, chips and shards, statistics.", no_args_is_help=True)
    data_sample.register(group)
    app.add_typer(group, name="data")
