"""Overrides written to params.yaml for DVC: read whole, validated, and written atomically."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from skysense.config import SkySenseConfig, load_config
from skysense.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_override_write_that_runs_out_of_space_keeps_params_whole(tmp_path: Path) -> None:
    """Before: the rewrite truncated params.yaml to its first 600 bytes, which then loaded as
    defaults. A child process writes under a 600-byte file-size limit (EFBIG, as ENOSPC).
    """
    params = tmp_path / "params.yaml"
    params.write_bytes((ROOT / "params.yaml").read_bytes())
    before = params.read_bytes()
    code = textwrap.dedent("""
        from pathlib import Path
        from flows.pipeline import write_overrides_to_params  # imports (and seeds Prefect) first
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600))
        try:
            write_overrides_to_params(Path("."), Path("params.yaml"), ["train.steps=3"])
        except OSError as exc:
            print("write failed:", exc.errno)
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PREFECT_HOME=str(tmp_path / ".prefect"))
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "write failed: 27" in res.stdout, res.stdout + res.stderr[-3000:]
    assert params.read_bytes() == before
    assert load_config(params).train.steps == SkySenseConfig().train.steps
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_overrides_refuse_a_cut_short_params_file_and_complete_a_missing_one(
    tmp_path: Path,
) -> None:
    from flows.pipeline import write_overrides_to_params

    params = tmp_path / "params.yaml"
    cut = (ROOT / "params.yaml").read_bytes()[:600]
    params.write_bytes(cut)
    with pytest.raises(ConfigError, match="cut short|ends in the middle of line"):
        write_overrides_to_params(tmp_path, Path("params.yaml"), ["train.steps=3"])
    assert params.read_bytes() == cut  # not "repaired" into a file of defaults

    params.unlink()
    write_overrides_to_params(tmp_path, Path("params.yaml"), ["train.steps=3"])
    raw = yaml.safe_load(params.read_text())
    assert set(raw) == set(SkySenseConfig.model_fields)  # a complete file, not just the override
    assert load_config(params).train.steps == 3
