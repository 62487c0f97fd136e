"""dvc.yaml tracks every setting that changes a stage's outputs, and not the parallelism ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from skysense.config import load_config

ROOT = Path(__file__).resolve().parents[2]
# settings that only say how many processes or threads do the work: the outputs are the same
# (byte for byte for the sample and the chips, tested in tests/data), so changing them must not
# re-run a stage
PARALLELISM = {"workers"}


def _tracked(stage: str) -> set[str]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {p for p in stages[stage]["params"] if isinstance(p, str)}


@pytest.mark.parametrize(("stage", "section"), [
    ("sample", "data.sample"), ("validate", "validation"), ("chip", "data.chip"),
])
def test_stage_tracks_each_output_setting_of_its_section_but_not_workers(stage: str, section: str) -> None:
    node = load_config(None, None).model_dump(mode="json")
    for part in section.split("."):
        node = node[part]
    expected = {f"{section}.{key}" for key in node if key not in PARALLELISM}
    tracked = {p for p in _tracked(stage) if p.startswith(section + ".") or p == section}
    assert section not in tracked, f"{stage} tracks the whole {section} block, workers included"
    assert tracked == expected, (f"dvc.yaml stage {stage}: add {sorted(expected - tracked)}, "
                                 f"drop {sorted(tracked - expected)}")


def test_changing_workers_reruns_nothing(tmp_path: Path) -> None:
    """A real DVC repo: after a recorded stage, a new `workers` value leaves it up to date, a
    new output setting does not."""
    import subprocess
    import sys

    dvc = str(Path(sys.executable).with_name("dvc"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["sample"]
    # the same params, a cheap command with the same kind of output
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"sample": {
        "cmd": "mkdir -p out && echo done > out/flag", "params": stage["params"], "outs": ["out"]}}}))
    env = {"DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(tmp_path / ".site"), "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}

    def run(*args: str) -> str:
        proc = subprocess.run([dvc, *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    run("init", "-q")
    run("repro")
    params["data"]["sample"]["workers"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "Stage 'sample' didn't change" in run("repro")
    params["data"]["sample"]["size_px"] = 32
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "Running stage 'sample'" in run("repro")
