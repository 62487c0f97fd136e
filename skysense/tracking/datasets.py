"""Datasets on MLflow's own pages: ``log_input`` of the chips and the downstream sets.

MLflow's run table shows a Datasets column, and its model page the datasets a metric was
computed on, when runs log their inputs as ``mlflow.data`` datasets. The chip manifest
(``manifest.parquet``) and each downstream set's ``index.csv`` are the tables logged (their
rows: one chip or one sample); the source is the folder; the digest is the md5 DVC recorded for
that folder (in ``dvc.lock`` or ``<folder>.dvc``), the same value as the version's lineage tags,
so that the MLflow page and ``dvc`` name one data version. A folder DVC does not track gets
MLflow's own digest of the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from skysense.core.lineage import data_version

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.data.pandas_dataset import PandasDataset

MANIFEST = "manifest.parquet"
DOWNSTREAM_TASKS = ("classification", "segmentation")


@dataclass(frozen=True)
class LoggedInput:
    """A dataset and the context it was used in (``training``, ``evaluation``)."""

    dataset: PandasDataset
    context: str


def dvc_digest(folder: str | Path) -> str | None:
    """The DVC md5 of ``folder`` (``<md5>.dir``), or ``None`` when DVC does not track it."""
    version = data_version(Path(folder))
    return version.removeprefix("dvc:") if version.startswith("dvc:") else None


def folder_dataset(table: pd.DataFrame, folder: str | Path, name: str) -> PandasDataset:
    """An ``mlflow.data`` dataset of ``table`` whose source is ``folder`` and whose digest is
    the folder's DVC md5 when there is one.
    """
    from mlflow.data.pandas_dataset import from_pandas

    return from_pandas(
        table, source=str(Path(folder).resolve()), name=name, digest=dvc_digest(folder)
    )


def chips_dataset(chips_dir: str | Path, name: str = "chips") -> PandasDataset | None:
    """The chip manifest as a dataset (``None`` without a manifest)."""
    manifest = Path(chips_dir) / MANIFEST
    if not manifest.is_file():
        return None
    table = pd.read_parquet(manifest)
    for column in table.columns:  # list columns (dates, validity) as text: a flat schema
        if table[column].map(lambda v: isinstance(v, list | tuple) or hasattr(v, "tolist")).any():
            table[column] = table[column].map(
                lambda v: ",".join(str(x) for x in (v.tolist() if hasattr(v, "tolist") else v))
            )
    return folder_dataset(table, chips_dir, name)


def downstream_datasets(downstream_dir: str | Path) -> list[PandasDataset]:
    """One dataset per downstream task found (``<task>/index.csv``), named ``downstream-<task>``."""
    root = Path(downstream_dir)
    out = []
    for task in DOWNSTREAM_TASKS:
        index = root / task / "index.csv"
        if index.is_file():
            out.append(folder_dataset(pd.read_csv(index), root / task, f"downstream-{task}"))
    return out


def log_inputs(client: MlflowClient, run_id: str, inputs: list[LoggedInput]) -> None:
    """``log_input`` each dataset on ``run_id`` with its context tag."""
    from mlflow.entities import DatasetInput, InputTag

    if not inputs:
        return
    client.log_inputs(
        run_id,
        datasets=[
            DatasetInput(
                dataset=item.dataset._to_mlflow_entity(),
                tags=[InputTag(key="mlflow.data.context", value=item.context)],
            )
            for item in inputs
        ],
    )
