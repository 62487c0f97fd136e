"""Fixtures: a real MLflow store (SQLite in a temp folder) and small real pyfunc models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from projection_model import BandProjectionEmbedder, example_input, write_weights

from skysense.core.lineage import file_sha256
from skysense.registry.register import RegistrationResult, register_pyfunc
from skysense.registry.signature import embedding_signature
from skysense.tracking.store import connect, ensure_experiment, sqlite_path


def register_projection(
    client,
    name: str,
    folder: Path,
    seed: int,
    metrics: dict[str, float],
    experiment_id: str,
    sqlite_db: Path | None,
) -> RegistrationResult:
    """Log and register a :class:`BandProjectionEmbedder` whose weights come from ``seed``."""
    weights = write_weights(folder / f"weights-{seed}.npz", seed)
    example = example_input()
    signature = embedding_signature(["s2", "s2_doy"], 8)
    return register_pyfunc(
        client,
        name,
        python_model=BandProjectionEmbedder(),
        checkpoint_sha256=file_sha256(weights),
        artifacts={"weights": str(weights)},
        signature=signature,
        input_example=example,
        pip_requirements=["mlflow", "numpy"],
        tags={"data_version": f"md5:test{seed}", "git_commit": "test", "params_hash": "p"},
        metrics=metrics,
        description=f"# test model {seed}",
        experiment_id=experiment_id,
        sqlite_db=sqlite_db,
    )


@pytest.fixture()
def sqlite_store(tmp_path, monkeypatch):
    """``(client, uri, experiment_id, db_path)`` of a fresh SQLite MLflow store in ``tmp_path``."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = connect(uri)
    exp = ensure_experiment(client, "registry-test", tmp_path / "mlartifacts", uri)
    return client, uri, exp, sqlite_path(uri)
