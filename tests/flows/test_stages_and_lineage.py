"""Stage execution over a real DVC repo (run, skip, fail, transient), and DVC md5 lineage."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from flow_project import bin_path, git

from flows import stages
from skysense.core.lineage import dvc_md5, find_repo_root, lineage_tags

SCRIPT = (
    "import json, pathlib, sys, yaml; p = yaml.safe_load(open('params.yaml'));"
    "out = pathlib.Path('out'); out.mkdir(exist_ok=True);"
    "(out / 'area.txt').write_text(str(p['scene']['side_px'] * 10));"
    "json.dump({'km2': (p['scene']['side_px'] / 100) ** 2}, open('m.json', 'w'))"
)


@pytest.fixture()
def dvc_repo(tmp_path):
    """A git + DVC repo with one stage ``measure`` (params scene.side_px, outs out/, metric
    m.json).
    """
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    subprocess.run([bin_path("dvc"), "init", "-q"], cwd=repo, check=True)
    (repo / "params.yaml").write_text("scene:\n  side_px: 64\nother:\n  x: 1\n")
    (repo / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "measure": {
                        "cmd": f'{sys.executable} -c "{SCRIPT}"',
                        "params": ["scene.side_px"],
                        "outs": ["out"],
                        "metrics": [{"m.json": {"cache": False}}],
                    },
                    "broken": {
                        "cmd": (
                            f"{sys.executable} -c "
                            "\"import sys; sys.exit('error: catalog x.yaml is broken')\""
                        ),
                        "outs": ["never"],
                    },
                    "flaky": {
                        "cmd": (
                            f'{sys.executable} -c "import sys; '
                            "sys.exit('error: Connection refused by 127.0.0.1:5000')\""
                        ),
                        "outs": ["never2"],
                    },
                }
            }
        )
    )
    return repo


def test_dvc_stage_runs_then_skips_and_records_md5(dvc_repo):
    first = stages.run_dvc_stage("measure", dvc_repo)
    assert first.ran and (dvc_repo / "out" / "area.txt").read_text() == "640"
    second = stages.run_dvc_stage("measure", dvc_repo)
    assert not second.ran
    assert not stages.dvc_stage_changed("measure", dvc_repo)

    md5 = dvc_md5("out", dvc_repo)
    lock = yaml.safe_load((dvc_repo / "dvc.lock").read_text())
    outs = {o["path"]: o["md5"] for o in lock["stages"]["measure"]["outs"]}
    assert md5 == outs["out"] and md5.endswith(".dir")
    assert dvc_md5(dvc_repo / "out", dvc_repo) == md5  # absolute paths too
    assert dvc_md5("m.json", dvc_repo) == outs["m.json"]
    assert dvc_md5("nowhere", dvc_repo) is None
    assert lineage_tags(dvc_repo, {"dvc.out_md5": "out", "dvc.none": "nowhere"}) == {
        "dvc.out_md5": md5
    }
    assert find_repo_root(dvc_repo / "out") == dvc_repo.resolve()

    # A param of this stage makes it stale; another param does not.
    (dvc_repo / "params.yaml").write_text("scene:\n  side_px: 64\nother:\n  x: 2\n")
    assert not stages.dvc_stage_changed("measure", dvc_repo)
    (dvc_repo / "params.yaml").write_text("scene:\n  side_px: 32\nother:\n  x: 2\n")
    assert stages.dvc_stage_changed("measure", dvc_repo)
    assert stages.run_dvc_stage("measure", dvc_repo).ran
    assert dvc_md5("out", dvc_repo) != md5


def test_dvc_push_adds_a_missing_remote_locally_and_pushes(dvc_repo, tmp_path):
    stages.run_dvc_stage("measure", dvc_repo)
    remote = tmp_path / "team-remote"
    report = stages.dvc_push(dvc_repo, "team", str(remote))
    assert report.stage == "push"
    assert "team" in (dvc_repo / ".dvc" / "config.local").read_text()
    assert "team" not in (dvc_repo / ".dvc" / "config").read_text()
    pushed = [p for p in remote.rglob("*") if p.is_file()]
    assert len(pushed) >= 2  # the directory manifest and area.txt


def test_failing_stage_raises_with_its_own_message(dvc_repo):
    with pytest.raises(stages.StageFailed) as info:
        stages.run_dvc_stage("broken", dvc_repo)
    assert not isinstance(info.value, stages.TransientStageError)
    assert "stage 'broken' failed" in str(info.value)
    assert "error: catalog x.yaml is broken" in str(info.value)
    assert "failed to reproduce" not in str(info.value)


def test_unreachable_server_is_transient(dvc_repo):
    with pytest.raises(stages.TransientStageError, match="Connection refused"):
        stages.run_dvc_stage("flaky", dvc_repo)


def test_cli_mode_resolves_dvc_templates():
    values = {"paths": {"chips": "data/my chips", "validation": "reports/validation"}}
    cmds = stages.stage_commands("chip", stages.Path(__file__).resolve().parents[2], values)
    assert cmds[0] == (
        "skysense data chip --catalog reports/validation/accepted_catalog.yaml "
        "--out 'data/my chips'"
    )
    with pytest.raises(stages.StageFailed, match=r"\$\{paths.nope\}"):
        stages.resolve_templates("x ${paths.nope}", values)


def test_no_dvc_repo_means_no_lineage(tmp_path):
    assert dvc_md5("data/chips", tmp_path) is None
    assert lineage_tags(tmp_path) == {}
