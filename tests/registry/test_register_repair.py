"""A registration killed after its version was created is repaired by the next one (issue #21,
item 12): before, the rerun found the version by its checkpoint hash and returned early, printed
"challenger -> vN" while ``challenger`` still pointed at the old version, and a later promote
promoted (or tried to) the old challenger.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from skysense.cli import app
from skysense.config import SkySenseConfig, registration_settings
from skysense.core.lineage import file_sha256
from skysense.registry.export_registration import register_export
from skysense.registry.promotion import alias_version, promote
from skysense.registry.settings import MetricRule, PromotionPolicy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from scene_fixtures import write_random_export

NAME = "skysense-repair"
CRASH = Path(__file__).with_name("crashing_registration.py")
POLICY = PromotionPolicy(decide={"linear_acc": MetricRule(min_improvement=0.01)}, no_regress={})
REPO = Path(__file__).resolve().parents[2]


def test_rerun_repairs_registration_killed_after_version_created(
    sqlite_store, tmp_path, monkeypatch
):
    client, uri, exp, db = sqlite_store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    cfg = SkySenseConfig()
    cfg.registry.model_name = NAME
    first = register_export(
        client,
        registration_settings(cfg),
        write_random_export(tmp_path / "export-1", seed=1),
        {"linear_acc": 0.6},
        experiment_id=exp,
        sqlite_db=db,
    )
    assert promote(client, NAME, POLICY, sqlite_db=db).champion == first.version == "1"

    second = write_random_export(tmp_path / "export-2", seed=2)
    crashed = subprocess.run(
        [sys.executable, str(CRASH), uri, NAME, str(second), exp, "0.7"],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    half = client.get_model_version(NAME, "2")  # the version exists, with its tags ...
    assert half.tags["checkpoint_sha256"] == file_sha256(second / "model.safetensors")
    assert not (half.description or "").strip()  # ... but no model card
    assert str(alias_version(client, NAME, "challenger").version) == "1"  # and a stale challenger

    (tmp_path / "metrics.json").write_text(json.dumps({"linear_acc": 0.7}))
    args = [
        "register",
        "--export",
        str(second),
        "--metrics",
        str(tmp_path / "metrics.json"),
        "--set",
        f"registry.model_name={NAME}",
    ]
    rerun = CliRunner().invoke(app, args)
    assert rerun.exit_code == 0, rerun.output
    assert (
        "v2 already registered (same checkpoint); repaired description, alias challenger; "
        "challenger is v2"
    ) in " ".join(rerun.stdout.split())  # rich wraps long lines
    repaired = client.get_model_version(NAME, "2")
    assert str(alias_version(client, NAME, "challenger").version) == "2"
    assert "| linear_acc | 0.7000" in repaired.description
    for key in (
        "checkpoint_sha256",
        "export_config_sha256",
        "data_version",
        "git_commit",
        "params_hash",
        "preset",
        "training_run_id",
        "metric.linear_acc",
    ):
        assert key in repaired.tags, key
    assert repaired.tags["metric.linear_acc"] == "0.7"
    assert len(client.search_model_versions(f"name = '{NAME}'")) == 2  # no third version

    again = CliRunner().invoke(app, args)  # idempotent: nothing left to repair
    assert again.exit_code == 0, again.output
    assert "v2 already registered (same checkpoint); challenger is v2" in " ".join(
        again.stdout.split()
    )

    promoted = promote(client, NAME, POLICY, sqlite_db=db)  # the new challenger, not the old
    assert promoted.action == "promote" and promoted.version == "2"
    assert promoted.previous_champion == "1"


def test_repair_never_moves_challenger_back_to_an_older_version(sqlite_store, tmp_path):
    client, _, exp, db = sqlite_store
    cfg = SkySenseConfig()
    cfg.registry.model_name = NAME
    old = write_random_export(tmp_path / "export-1", seed=1)
    register_export(
        client,
        registration_settings(cfg),
        old,
        {"linear_acc": 0.6},
        experiment_id=exp,
        sqlite_db=db,
    )
    register_export(
        client,
        registration_settings(cfg),
        write_random_export(tmp_path / "export-2", seed=2),
        {"linear_acc": 0.7},
        experiment_id=exp,
        sqlite_db=db,
    )
    again = register_export(
        client,
        registration_settings(cfg),
        old,
        {"linear_acc": 0.6},
        experiment_id=exp,
        sqlite_db=db,
    )
    assert not again.created and again.version == "1" and again.repaired == []
    assert again.challenger == "2"
    assert str(alias_version(client, NAME, "challenger").version) == "2"
