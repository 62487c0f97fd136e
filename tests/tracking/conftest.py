"""Fixtures of the tracking tests: the registry's SQLite store fixture."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "registry"))

from registry_fixtures import sqlite_store  # noqa: F401
