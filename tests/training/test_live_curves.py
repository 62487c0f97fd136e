"""Training curves through DVCLive, read back by DVC itself (issue #20).

A 4-step run of the tiny pre-trainer writes ``<checkpoints>/../dvclive``: every loss term, the
learning rate and the EMA momentum per step. A DVC project (real ``git`` and ``dvc``) whose
stage writes the curves with :class:`LiveCurves` is run twice with ``dvc exp run -S``; ``dvc exp
show`` lists both experiments' last values and ``dvc plots diff`` renders their curves.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from skysense.training.live_curves import LiveCurves, curves_dir
from skysense.training.loop import train

sys.path.insert(0, str(Path(__file__).parent))
from fixture_pretrainer import TinyPretrainer, config_with, stack_samples, tiny_samples

from skysense.config import training_job


def _tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_training_writes_every_loss_term_lr_and_momentum_per_step(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    cfg = config_with(
        ["train.zero_stage=2", "train.steps=4", "train.checkpoint_every=4",
         "train.warmup_steps=1", f"registry.artifact_location={tmp_path / 'art'}"],
    )  # fmt: skip
    torch.manual_seed(0)
    result = train(
        training_job(cfg), None, tmp_path / "ckpt", pretrainer=TinyPretrainer(),
        dataset=tiny_samples(), collate=stack_samples, show_progress=False, export=False,
    )  # fmt: skip
    live = curves_dir(tmp_path / "ckpt")
    assert live == tmp_path / "dvclive"
    summary = json.loads((live / "metrics.json").read_text())
    assert summary["step"] == 4
    plots = live / "plots" / "metrics" / "train"
    names = {p.stem for p in plots.glob("*.tsv")}
    assert {"loss", "recon", "distill", "lr", "ema_momentum"} <= names
    loss = _tsv(plots / "loss.tsv")
    assert [int(r["step"]) for r in loss] == [1, 2, 3, 4]
    assert [float(r["loss"]) for r in loss] == pytest.approx(result.losses, rel=1e-6)
    momentum = [float(r["ema_momentum"]) for r in _tsv(plots / "ema_momentum.tsv")]
    assert momentum == sorted(momentum) and 0.99 <= momentum[0] < momentum[-1] <= 1.0


def test_a_resumed_run_drops_the_rows_past_its_checkpoint(tmp_path):
    first = LiveCurves(tmp_path / "dvclive", 0, ("loss",))
    for step in range(1, 6):
        first.log_step(step, {"loss": 1.0 / step, "lr": 0.1, "ema_momentum": 0.99})
    first.close()
    again = LiveCurves(tmp_path / "dvclive", 3, ("loss",))  # resumed from the step-3 checkpoint
    again.log_step(4, {"loss": 0.2, "lr": 0.1, "ema_momentum": 0.995})
    again.close()
    rows = _tsv(tmp_path / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv")
    assert [(int(r["step"]), float(r["loss"])) for r in rows] == [
        (1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3)), (4, 0.2)
    ]  # fmt: skip


STAGE = """
import sys, yaml
from skysense.training.live_curves import LiveCurves
lr = yaml.safe_load(open("params.yaml"))["train"]["lr"]
curves = LiveCurves("checkpoints/dvclive", 0, ("loss",))
for step in range(1, 4):
    curves.log_step(step, {"loss": 1.0 / (lr * step), "lr": lr, "ema_momentum": 0.99})
curves.close()
"""

DVC_YAML = """
stages:
  train:
    cmd: {python} train.py
    params:
      - train
    metrics:
      - checkpoints/dvclive/metrics.json:
          cache: false
    plots:
      - checkpoints/dvclive/plots/metrics:
          x: step
          cache: false
"""


def test_dvc_exp_show_and_plots_diff_read_the_curves(tmp_path):
    bindir = Path(sys.executable).parent
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "DVC_NO_ANALYTICS": "1", "HOME": str(tmp_path),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
           "DVC_SITE_CACHE_DIR": str(tmp_path / ".dvc-site")}  # fmt: skip

    def sh(*args):
        return subprocess.run(
            args, cwd=tmp_path, env=env, check=True, capture_output=True, text=True
        ).stdout

    (tmp_path / "train.py").write_text(STAGE)
    (tmp_path / "params.yaml").write_text("train:\n  lr: 0.5\n")
    (tmp_path / "dvc.yaml").write_text(DVC_YAML.format(python=sys.executable))
    sh("git", "init", "-q")
    sh("dvc", "init", "-q")
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "init")
    for lr in ("0.5", "0.25"):
        sh("dvc", "exp", "run", "-q", "-S", f"train.lr={lr}")
    shown = json.loads(sh("dvc", "exp", "show", "--json"))
    experiments = [e for rev in shown for e in (rev.get("experiments") or [])]
    values = []
    for exp in experiments:
        for run in exp["revs"]:
            metrics = run["data"]["metrics"]["checkpoints/dvclive/metrics.json"]["data"]
            values.append(metrics["train"]["loss"])
    assert sorted(values) == pytest.approx([1 / 1.5, 1 / 0.75])  # lr 0.5 and 0.25, step 3
    names = [run["name"] for exp in experiments for run in exp["revs"]]
    diff = json.loads(sh("dvc", "plots", "diff", *names, "--json"))
    (plot,) = diff["data"]["checkpoints/dvclive/plots/metrics/train/loss.tsv"]
    assert sorted(plot["revisions"]) == sorted(names)  # both experiments' curves, one plot
    points = plot["content"]["data"]["values"]
    assert {p["rev"] for p in points} == set(names) and len(points) == 6
