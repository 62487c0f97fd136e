"""Fixtures of the registry tests (helpers live in ``registry_fixtures``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(
    0, str(Path(__file__).parent.parent / "inference")
)  # scene_fixtures: GeoTIFF scenes

from registry_fixtures import sqlite_store  # noqa: F401
from scene_fixtures import scene_files  # noqa: F401
