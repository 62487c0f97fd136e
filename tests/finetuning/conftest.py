"""Fixtures of the fine-tuning tests: a small generated sample and a random-init encoder export."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))

from scene_fixtures import write_random_export
from small_sample import SMALL_SAMPLE

from skysense.cli import app


@pytest.fixture(scope="session")
def ft_sample(tmp_path_factory) -> Path:
    """The sample's downstream folder (16 segmentation chips of 8 px, one held-out place)."""
    root = tmp_path_factory.mktemp("ft-sample")
    res = CliRunner().invoke(app, ["data", "sample", "--out", str(root / "sample"), *SMALL_SAMPLE])
    assert res.exit_code == 0, res.output
    return root / "sample" / "downstream"


@pytest.fixture(scope="session")
def ft_encoder(tmp_path_factory) -> Path:
    """A seeded random tiny encoder, exported as training exports it."""
    return write_random_export(tmp_path_factory.mktemp("ft-encoder") / "export", seed=1)
