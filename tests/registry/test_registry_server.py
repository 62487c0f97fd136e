"""The registry lifecycle against a real ``mlflow server`` process on 127.0.0.1."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from projection_model import example_input
from registry_fixtures import register_projection

from skysense.registry.lock import LOCK_URL_ENV
from skysense.registry.promotion import alias_version, promote, read_history, rollback
from skysense.registry.settings import MetricRule, PromotionPolicy
from skysense.registry.status import registry_status
from skysense.tracking.server import start_mlflow_server
from skysense.tracking.store import connect, ensure_experiment

NAME = "skysense-served"
POLICY = PromotionPolicy(
    decide={"linear_acc": MetricRule(min_improvement=0.01)}, no_regress={"miou": 0.02}
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real tracking server (SQLite backend, proxied artifacts) for this module."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with start_mlflow_server(f"sqlite:///{root / 'backend.db'}", root / "artifacts") as srv:
        yield srv, root / "backend.db"


def test_lifecycle_on_server(server, tmp_path, monkeypatch):
    server, backend_db = server
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # The server's own SQLite database names the promotion lock (the server is on this host).
    monkeypatch.setenv(LOCK_URL_ENV, f"sqlite:///{backend_db}")
    client = connect(server.url)
    exp = ensure_experiment(client, "server-test", None, server.url)

    a = register_projection(client, NAME, tmp_path, 1, {"linear_acc": 0.6, "miou": 0.3}, exp, None)
    b = register_projection(client, NAME, tmp_path, 1, {"linear_acc": 0.6, "miou": 0.3}, exp, None)
    assert a.created and not b.created and a.version == b.version
    assert len(client.search_model_versions(f"name = '{NAME}'")) == 1
    assert promote(client, NAME, POLICY).action == "promote"

    register_projection(client, NAME, tmp_path, 2, {"linear_acc": 0.7, "miou": 0.31}, exp, None)
    assert promote(client, NAME, POLICY).action == "promote"
    assert str(alias_version(client, NAME, "champion").version) == "2"

    register_projection(client, NAME, tmp_path, 3, {"linear_acc": 0.705, "miou": 0.4}, exp, None)
    refused = promote(client, NAME, POLICY)
    assert refused.action == "refuse"
    assert str(alias_version(client, NAME, "champion").version) == "2"
    reasons = client.get_model_version(NAME, "3").tags["promotion.reasons"]
    assert "FAIL linear_acc" in reasons and "+0.0050" in reasons

    rollback(client, NAME, reason="test")
    assert str(alias_version(client, NAME, "champion").version) == "1"
    assert [h["action"] for h in read_history(client, NAME)] == [
        "promote",
        "promote",
        "refuse",
        "rollback",
    ]
    assert registry_status(client, NAME)["aliases"]["champion"] == "1"

    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    emb = model.predict(example_input(batch=1, size=4))
    assert emb.shape == (1, 8, 4, 4) and np.isfinite(emb).all()
