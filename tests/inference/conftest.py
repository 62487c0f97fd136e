"""Fixtures of the inference tests (helpers live in ``scene_fixtures``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from scene_fixtures import scene_files  # noqa: F401
