"""Typed configuration: params.yaml parsing, overrides and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from skysense.cli import app
from skysense.config import ConfigError, SkySenseConfig, dump_config, load_config

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_match_defaults() -> None:
    """params.yaml is valid and mirrors the embedded defaults (no stale or missing keys)."""
    cfg = load_config(REPO / "params.yaml")
    assert cfg == SkySenseConfig()


def test_overrides_are_typed(tmp_path: Path) -> None:
    cfg = load_config(REPO / "params.yaml", ["train.zero_stage=3", "train.lr=0.001", "model.overrides={s2_depth: 2}"])
    assert cfg.train.zero_stage == 3
    assert cfg.train.lr == pytest.approx(1e-3)
    assert cfg.model.overrides == {"s2_depth": 2}


def test_unknown_key_names_key_and_allowed(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump({"train": {"zero_stag": 3}}))
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    msg = str(err.value)
    assert str(bad) in msg and "train.zero_stag" in msg and "zero_stage" in msg


def test_bad_value_names_allowed_values() -> None:
    with pytest.raises(ConfigError, match=r"train.zero_stage.*0, 1, 2 or 3"):
        load_config(REPO / "params.yaml", ["train.zero_stage=7"])


def test_malformed_yaml_and_override(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(REPO / "params.yaml", ["train.zero_stage"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(bad)


def test_unknown_preset_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'skysense-giant'.*skysense-tiny"):
        load_config(REPO / "params.yaml", ["model.preset=skysense-giant"])


def test_dump_round_trips(tmp_path: Path) -> None:
    cfg = load_config(REPO / "params.yaml", ["train.steps=7"])
    p = tmp_path / "p.yaml"
    p.write_text(dump_config(cfg))
    assert load_config(p) == cfg


def test_cli_config_show() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["config", "show", "--params", str(REPO / "params.yaml"), "--set", "train.nproc=1", "--json"])
    assert res.exit_code == 0, res.output
    assert '"nproc": 1' in res.output
    res = runner.invoke(app, ["config", "show", "--params", str(REPO / "params.yaml"), "--set", "train.bogus=1"])
    assert res.exit_code == 2
    assert "train.bogus" in res.output


def test_reading_params_does_not_import_torch():
    """Every stage command reads params.yaml first (the preset name is checked there): that must
    not pay torch's import, which the data and validation stages never use."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from skysense.config import load_config\n"
        "cfg = load_config(None, None)\n"
        "assert cfg.model.preset == 'skysense-tiny'\n"
        "assert 'torch' not in sys.modules, 'reading the config imported torch'\n"
        "from skysense.models import create_model, SkySense\n"
        "assert 'torch' in sys.modules and callable(create_model)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
