"""dvc.yaml tracks every setting that changes a stage's outputs, and not the parallelism ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from flow_project import ROOT

from skysense.config import load_config

# settings that only say how many processes or threads do the work: the outputs are the same
# (the sample byte for byte, tested in tests/data/test_sample.py; chips and validation files but
# for their timing fields), so changing them must not re-run a stage; and where failures are
# notified (a receiver's URL, often from the environment), which changes no output either
PARALLELISM = {"workers", "failure_webhook"}


def _tracked(stage: str) -> set[str]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {p for p in stages[stage]["params"] if isinstance(p, str)}


@pytest.mark.parametrize(
    ("stage", "section"),
    [
        ("sample", "data.sample"),
        ("validate", "validation"),
        ("chip", "data.chip"),
    ],
)
def test_stage_tracks_each_output_setting_of_its_section_but_not_workers(
    stage: str, section: str
) -> None:
    node = load_config(None, None).model_dump(mode="json")
    for part in section.split("."):
        node = node[part]
    expected = {f"{section}.{key}" for key in node if key not in PARALLELISM}
    tracked = {p for p in _tracked(stage) if p.startswith(section + ".") or p == section}
    assert section not in tracked, f"{stage} tracks the whole {section} block, workers included"
    assert tracked == expected, (
        f"dvc.yaml stage {stage}: add {sorted(expected - tracked)}, "
        f"drop {sorted(tracked - expected)}"
    )


def test_changing_workers_reruns_nothing(project: Path) -> None:
    """A real DVC repo: after a recorded stage, a new `workers` value leaves it up to date, a
    new output setting does not.
    """
    from flows.stages import run_dvc_stage

    stage = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]["sample"]
    # the same params, a cheap command with the same kind of output
    (project / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "sample": {
                        "cmd": "mkdir -p out && echo done > out/flag",
                        "params": stage["params"],
                        "outs": ["out"],
                    }
                }
            }
        )
    )
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert run_dvc_stage("sample", project).ran
    params["data"]["sample"]["workers"] = 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert not run_dvc_stage("sample", project).ran
    params["data"]["sample"]["size_px"] = 32
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert run_dvc_stage("sample", project).ran
