"""``skysense train --out``: one writer per checkpoints folder, resume when the folder's
fingerprint matches, set the folder aside (kept) and start clean when it does not.

Real training runs (the tiny preset, slimmed, on real chips) through the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from skysense.config import dump_config, training_job
from skysense.training.engine import Runtime
from skysense.training.run_folder import (
    FINGERPRINT,
    differences,
    folder_lock,
    lock_path,
    prepare_run_folder,
    run_fingerprint,
)

sys.path.insert(0, str(Path(__file__).parent))
from chips_fixture import TINY_OVERRIDES, write_tiny_chips
from fixture_pretrainer import config_with

REPO = Path(__file__).resolve().parents[2]
CPU = Runtime(device="cpu", backend="gloo", precision="fp32")


@pytest.fixture(scope="module")
def chips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_chips(tmp_path_factory.mktemp("chips") / "chips")


def _params(tmp: Path) -> Path:
    cfg = config_with(
        [
            "train.steps=2",
            "train.checkpoint_every=2",
            "train.warmup_steps=1",
            "train.micro_batch=2",
            "train.nproc=1",
            "train.experiment=run-folder-test",
        ]
    )
    raw = yaml.safe_load(dump_config(cfg))
    raw["model"]["overrides"] = TINY_OVERRIDES
    raw["registry"]["artifact_location"] = str(tmp / "mlartifacts")
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _train(tmp: Path, chips: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlflow.db'}",
        PYTHONPATH=str(REPO),
        OMP_NUM_THREADS="1",
        COLUMNS="300",
    )
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("skysense")),
            "train",
            "--chips",
            str(chips),
            "--out",
            str(out),
            "--params",
            str(_params(tmp)),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp,
        check=False,
    )


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_rerun_resumes_a_matching_folder_and_sets_another_run_aside(
    chips: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ckpt"
    first = _train(tmp_path, chips, out)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (out / "latest").read_text() == "step-00000002"
    first_files = _files(out)
    run_id = json.loads((out / "run.json").read_text())["run_id"]

    # the same settings and chips: resumed (nothing left to train), nothing rewritten but export
    again = _train(tmp_path, chips, out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from step-00000002" in again.stdout
    assert {k: v for k, v in _files(out).items() if k.startswith("step-")} == {
        k: v for k, v in first_files.items() if k.startswith("step-")
    }
    assert json.loads((out / "run.json").read_text())["run_id"] == run_id

    # other settings: --resume refuses and changes nothing
    refused = _train(tmp_path, chips, out, "--resume", "--set", "train.lr=0.001")
    assert refused.returncode == 3
    assert "train.lr: 0.0005 -> 0.001" in refused.stderr and str(out) in refused.stderr
    assert {k: v for k, v in _files(out).items() if k.startswith("step-")} == {
        k: v for k, v in first_files.items() if k.startswith("step-")
    }

    # other settings, no flag: the old folder is renamed aside whole, the run starts clean
    clean = _train(tmp_path, chips, out, "--set", "train.lr=0.001")
    assert clean.returncode == 0, clean.stderr[-3000:]
    stale = sorted(tmp_path.glob("ckpt.stale-*"))
    assert (
        len(stale) == 1
        and "train.lr: 0.0005 -> 0.001" in clean.stdout
        and str(stale[0]) in clean.stdout
    )
    kept = _files(stale[0])
    for name, ident in first_files.items():
        if name.startswith("step-"):
            assert kept[name] == ident, name  # the same files, moved, not copied or rewritten
    assert json.loads((stale[0] / FINGERPRINT).read_text())["params"]["train"]["lr"] == 0.0005
    assert json.loads((out / FINGERPRINT).read_text())["params"]["train"]["lr"] == 0.001
    assert json.loads((out / "run.json").read_text())["run_id"] != run_id
    assert (out / "latest").read_text() == "step-00000002"
    rows = (out / "train_log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]


@pytest.mark.slow
def test_second_run_into_a_held_folder_is_refused_naming_lock_and_holder(
    chips: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ckpt"
    with folder_lock(out):
        proc = _train(tmp_path, chips, out)
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert str(lock_path(out)) in proc.stderr and f"pid {os.getpid()}" in proc.stderr
    assert not (out / "latest").exists() and not (out / FINGERPRINT).exists()


def test_fingerprint_tracks_settings_world_size_and_chips_but_not_checkpoint_cadence(
    chips: Path, tmp_path: Path
) -> None:
    cfg = config_with(["train.steps=4"])
    base = run_fingerprint(training_job(cfg), chips, CPU, world_size=1)
    same = run_fingerprint(
        training_job(
            config_with(["train.steps=4", "train.checkpoint_every=1", "train.keep_checkpoints=9"])
        ),
        chips,
        CPU,
        world_size=1,
    )
    assert same == base
    assert differences(base, run_fingerprint(training_job(cfg), chips, CPU, world_size=2)) == [
        "runtime.world_size: 1 -> 2"
    ]
    assert differences(
        base, run_fingerprint(training_job(config_with(["train.steps=5"])), chips, CPU, 1)
    ) == ["params.train.steps: 4 -> 5"]
    shard = next(p for p in chips.iterdir() if p.name.startswith("shard"))
    os.utime(
        shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 1)
    )  # a rewritten shard
    changed = differences(base, run_fingerprint(training_job(cfg), chips, CPU, world_size=1))
    assert changed == [f"chips changed (1 files, e.g. {shard.name})"]


def test_folder_without_fingerprint_is_set_aside_not_resumed(tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    (out / "step-00000003").mkdir(parents=True)
    (out / "step-00000003" / "weights.pt").write_bytes(b"checkpoint of an older version")
    (out / "latest").write_text("step-00000003")
    fingerprint = run_fingerprint(training_job(config_with([])), None, CPU, world_size=1)
    plan = prepare_run_folder(out, fingerprint)
    assert not plan.resume and plan.set_aside is not None and "no fingerprint.json" in plan.reason
    assert (
        plan.set_aside / "step-00000003" / "weights.pt"
    ).read_bytes() == b"checkpoint of an older version"
    assert sorted(p.name for p in out.iterdir()) == [FINGERPRINT]
    again = prepare_run_folder(out, fingerprint)  # now it is this run's folder
    assert again.resume and again.latest is None and again.set_aside is None


def test_training_run_of_an_export_is_the_one_its_config_names(tmp_path: Path) -> None:
    """A run.json of an older layout beside checkpoints/export (checkpoints/run.json) must not
    win over the run that made the export.
    """
    from skysense.registry.export_registration import training_run_id

    export = tmp_path / "checkpoints" / "export"
    export.mkdir(parents=True)
    (tmp_path / "checkpoints" / "run.json").write_text(json.dumps({"run_id": "old-layout-run"}))
    assert training_run_id(export, {"mlflow_run_id": "run-that-exported"}) == "run-that-exported"
    assert training_run_id(export, {"mlflow_run_id": None}) == "old-layout-run"  # untracked export
