"""Registration, gated promotion, refusal, rollback and loading against a real SQLite store."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
from projection_model import example_input
from registry_fixtures import register_projection

from skysense.core.errors import RegistryError
from skysense.registry.promotion import alias_version, promote, read_history, rollback
from skysense.registry.settings import MetricRule, PromotionPolicy
from skysense.registry.status import registry_status

NAME = "skysense-test"
POLICY = PromotionPolicy(
    decide={"linear_acc": MetricRule(min_improvement=0.01)}, no_regress={"miou": 0.02}
)


def test_register_is_idempotent_and_sets_challenger(sqlite_store, tmp_path):
    client, _, exp, db = sqlite_store
    first = register_projection(client, NAME, tmp_path, 1, {"linear_acc": 0.6}, exp, db)
    again = register_projection(client, NAME, tmp_path, 1, {"linear_acc": 0.6}, exp, db)
    assert first.created and not again.created
    assert again.version == first.version == "1"
    versions = client.search_model_versions(f"name = '{NAME}'")
    assert len(versions) == 1
    mv = versions[0]
    assert mv.tags["metric.linear_acc"] == "0.6"
    assert mv.tags["data_version"] == "md5:test1"
    assert len(mv.tags["checkpoint_sha256"]) == 64
    assert mv.description.startswith("# test model 1")
    assert str(alias_version(client, NAME, "challenger").version) == "1"


def test_promote_refuse_rollback_and_load(sqlite_store, tmp_path):
    client, _, exp, db = sqlite_store
    m1 = {"linear_acc": 0.60, "miou": 0.30}
    register_projection(client, NAME, tmp_path, 1, m1, exp, db)
    first = promote(client, NAME, POLICY, sqlite_db=db)
    assert first.action == "promote" and first.previous_champion is None
    assert str(alias_version(client, NAME, "champion").version) == "1"

    register_projection(client, NAME, tmp_path, 2, {"linear_acc": 0.70, "miou": 0.29}, exp, db)
    better = promote(client, NAME, POLICY, sqlite_db=db)
    assert better.action == "promote" and better.previous_champion == "1"
    assert str(alias_version(client, NAME, "champion").version) == "2"
    # the promoted version keeps ``challenger`` (newest registered) beside ``champion``
    assert str(alias_version(client, NAME, "challenger").version) == "2"

    # better on the deciding metric but regresses mIoU beyond the tolerance: refused
    register_projection(client, NAME, tmp_path, 3, {"linear_acc": 0.80, "miou": 0.20}, exp, db)
    worse = promote(client, NAME, POLICY, sqlite_db=db)
    assert worse.action == "refuse"
    assert str(alias_version(client, NAME, "champion").version) == "2"
    v3 = client.get_model_version(NAME, "3")
    assert v3.tags["promotion.status"] == "refused"
    assert "miou" in v3.tags["promotion.reasons"] and "0.2000" in v3.tags["promotion.reasons"]
    assert json.loads(v3.tags["promotion.compared"])["miou"] == {
        "challenger": 0.2,
        "champion": 0.29,
    }

    back = rollback(client, NAME, reason="bad maps in prod", sqlite_db=db)
    assert back.version == "1" and back.previous_champion == "2"
    assert str(alias_version(client, NAME, "champion").version) == "1"
    assert client.get_model_version(NAME, "2").tags["promotion.status"] == "rolled_back"
    with pytest.raises(RegistryError, match="no previous champion"):
        rollback(client, NAME, sqlite_db=db)

    history = read_history(client, NAME)
    assert [h["action"] for h in history] == ["promote", "promote", "refuse", "rollback"]
    assert history[-1]["reasons"] == ["bad maps in prod"] and "@" in history[-1]["by"]
    status = registry_status(client, NAME)
    assert status["aliases"] == {"champion": "1", "challenger": "3"}
    assert [v["version"] for v in status["versions"]] == ["3", "2", "1"]
    assert status["versions"][2]["metrics"]["linear_acc"] == pytest.approx(0.6)

    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    x = example_input(batch=2, size=5)
    emb = model.predict(x)
    assert emb.shape == (2, 8, 5, 5) and emb.dtype == np.float32
    w = np.load(tmp_path / "weights-1.npz")
    expected = np.tanh(
        np.einsum("dc,bchw->bdhw", w["weight"], x["s2"][:, -1]) + w["bias"][None, :, None, None]
    )
    np.testing.assert_allclose(emb, expected, rtol=1e-5, atol=1e-5)


def test_compare_and_set_conflict(sqlite_store, tmp_path):
    client, _, exp, db = sqlite_store
    register_projection(client, NAME, tmp_path, 1, {"linear_acc": 0.6}, exp, db)
    with pytest.raises(RegistryError, match="not the expected"):
        promote(client, NAME, POLICY, expected_champion="7", sqlite_db=db)
    assert alias_version(client, NAME, "champion") is None
    res = promote(client, NAME, POLICY, expected_champion="none", sqlite_db=db)
    assert res.champion == "1"


def test_status_carries_the_twin_and_the_label_scarce_gains(sqlite_store, tmp_path):
    """What the pipeline summary's pre-trained vs twin table reads (all labels and 5 per class)."""
    client, _, exp, db = sqlite_store
    metrics = {
        "linear_acc": 0.65,
        "linear_acc_random": 0.59,
        "linear_acc_gain": 0.06,
        "k5_linear_acc": 0.59,
        "k5_linear_acc_std": 0.02,
        "k5_linear_acc_random": 0.57,
        "k5_linear_acc_gain": 0.02,
        "k5_linear_acc_gain_std": 0.03,
        "pixel_acc": 0.7,  # not a key metric
        "k5_pixel_acc_gain": 0.01,
    }
    register_projection(client, NAME, tmp_path, 1, metrics, exp, db)
    shown = registry_status(client, NAME)["versions"][0]["metrics"]
    assert set(shown) == {k for k in metrics if "pixel_acc" not in k}
    assert shown["k5_linear_acc_gain_std"] == pytest.approx(0.03)
