"""Two promoters in separate processes race on one registered model: aliases stay consistent."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from registry_fixtures import register_projection

from skysense.registry.promotion import alias_version, read_history
from skysense.registry.tracking import connect

NAME = "skysense-race"
PROMOTER = Path(__file__).with_name("promoter.py")


def race(uri: str, versions: list[str], file_lock: bool) -> list[dict]:
    """Start one promoter process per version, all released at the same instant."""
    start = time.time() + 6.0  # time for the interpreters to import mlflow
    procs = [
        subprocess.Popen(
            [sys.executable, str(PROMOTER), uri, NAME, v, str(start)]
            + (["--file-lock"] if file_lock else []),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for v in versions
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def check_consistent(client, results: list[dict]) -> None:
    """Champion is the best; every recorded switch names the true previous champion."""
    assert str(alias_version(client, NAME, "champion").version) == "3"
    history = read_history(client, NAME)
    assert len(history) == 3
    champion = None
    for record in history:
        assert record["previous_champion"] == champion, history
        if record["action"] == "promote":
            champion = record["version"]
    assert champion == "3"
    assert sorted(r["action"] for r in results) in (["promote", "promote"],
                                                    ["promote", "refuse"])
    assert "promotion_lock" not in client.get_registered_model(NAME).tags


@pytest.mark.parametrize("file_lock", [True, False], ids=["file+tag-lock", "tag-lock"])
def test_two_concurrent_promoters(sqlite_store, tmp_path, file_lock):
    client, uri, exp, db = sqlite_store
    from skysense.config import PromotionPolicy
    from skysense.registry.promotion import promote

    register_projection(client, NAME, tmp_path, 1, {"linear_acc": 0.6}, exp, db)
    promote(client, NAME, PromotionPolicy(no_regress={}), sqlite_db=db, lock_settle_s=0.05)
    register_projection(client, NAME, tmp_path, 2, {"linear_acc": 0.7}, exp, db)
    register_projection(client, NAME, tmp_path, 3, {"linear_acc": 0.8}, exp, db)
    results = race(uri, ["2", "3"], file_lock)
    check_consistent(connect(uri), results)
