"""Fixtures of the registry tests (helpers live in ``registry_fixtures``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from registry_fixtures import sqlite_store  # noqa: F401
