"""Fixtures for the flow tests: a project-local Prefect home, and a temp git + DVC project.

PREFECT_HOME is set here, before any test module imports Prefect, so in-process flows use a
throw-away ephemeral API database instead of the user's.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="skysense-prefect-"))
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
sys.path.insert(0, str(Path(__file__).parent))

from flow_project import make_project


@pytest.fixture()
def project(tmp_path) -> Path:
    """A temp git + DVC project with the pipeline files."""
    return make_project(tmp_path / "project")
