"""Concurrent promoters in separate processes on one registered model (SQLite store): the lock
is exclusive, aliases stay consistent, and the history keeps every entry.

The PostgreSQL-backed ``mlflow server`` version of this race (4 promoters, advisory lock) is in
``tests/infra/test_registry_lock_postgres.py``.
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from promotion_race import assert_history_chain, assert_mutual_exclusion, race
from registry_fixtures import register_projection

from skysense.registry.lock import PromotionLock, PromotionLockError
from skysense.registry.promotion import alias_version, promote, read_history
from skysense.registry.settings import PromotionPolicy
from skysense.tracking.store import connect

NAME = "skysense-race"


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
    assert sorted(r["action"] for r in results) in (["promote", "promote"], ["promote", "refuse"])
    assert "promotion_lock" not in client.get_registered_model(NAME).tags


@pytest.mark.parametrize("sqlite_db", [True, False], ids=["sqlite-db-given", "sqlite-db-from-uri"])
def test_two_concurrent_promoters(sqlite_store, tmp_path, sqlite_db):
    client, uri, exp, db = sqlite_store
    register_projection(client, NAME, tmp_path, 1, {"linear_acc": 0.6}, exp, db)
    promote(client, NAME, PromotionPolicy(no_regress={}), sqlite_db=db)
    register_projection(client, NAME, tmp_path, 2, {"linear_acc": 0.7}, exp, db)
    register_projection(client, NAME, tmp_path, 3, {"linear_acc": 0.8}, exp, db)
    results, events = race(
        uri, NAME, ["2", "3"], tmp_path / "race", slow={"2": 0.2}, sqlite_db=sqlite_db
    )
    check_consistent(connect(uri), results)
    assert_mutual_exclusion(events, promoters=2)
    assert_history_chain(read_history(client, NAME), {"1", "2", "3"}, "3")


def test_file_lock_is_exclusive_and_rechecked(sqlite_store):
    client, _, _, db = sqlite_store
    with PromotionLock(client, NAME, timeout_s=5) as first:
        assert first.kind == "file" and first.where == f"{db}.promotion.lock"
        first.ensure_held()
        with (
            pytest.raises(PromotionLockError, match=r"locked by another promotion \(.*@.*:\d+\)"),
            PromotionLock(client, NAME, timeout_s=0.3),
        ):
            pass
        # The lock file replaced under the holder (someone deleted it): the next write is refused.
        lock_file = db.parent / (db.name + ".promotion.lock")
        lock_file.unlink()
        lock_file.touch()
        with pytest.raises(PromotionLockError, match="was lost before the next write"):
            first.ensure_held()
    with PromotionLock(client, NAME, timeout_s=1):
        pass


def test_server_store_without_lock_url_is_refused(monkeypatch):
    monkeypatch.delenv("SKYSENSE_REGISTRY_LOCK_URL", raising=False)
    client = MlflowClient(tracking_uri="http://127.0.0.1:9", registry_uri="http://127.0.0.1:9")
    with pytest.raises(PromotionLockError, match="SKYSENSE_REGISTRY_LOCK_URL"):
        promote(client, NAME, PromotionPolicy(no_regress={}), version="1")
