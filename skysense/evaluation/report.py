"""Evaluation outputs: confusion-matrix and PCA PNGs, per-class tables, MLflow logging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from skysense.tracking.datasets import LoggedInput, downstream_datasets, log_inputs


def confusion_png(cm: np.ndarray, class_names: list[str], path: Path, title: str) -> Path:
    """Row-normalised confusion matrix as a PNG (counts annotated)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(class_names), 1.0 + 0.6 * len(class_names)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def pca_rgb(pixels: np.ndarray) -> np.ndarray:
    """First three principal components of ``D x H x W`` embeddings as an ``H x W x 3`` image
    in 0..1 (each component stretched between its 2nd and 98th percentile).
    """
    d, h, w = pixels.shape
    x = pixels.reshape(d, -1).T
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    comps = x @ vt[:3].T
    lo, hi = np.percentile(comps, 2, axis=0), np.percentile(comps, 98, axis=0)
    img = np.clip((comps - lo) / np.maximum(hi - lo, 1e-8), 0, 1)
    if img.shape[1] < 3:
        img = np.pad(img, ((0, 0), (0, 3 - img.shape[1])))
    return img.reshape(h, w, 3)


def pca_png(pixels: np.ndarray, path: Path, title: str) -> Path:
    """PNG of :func:`pca_rgb` over one scene's per-pixel embeddings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(pca_rgb(pixels), interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def per_class_tables(rows: list[dict[str, object]], out_dir: Path, stem: str) -> list[Path]:
    """Write ``rows`` (one dict per class) as ``<stem>.csv`` and ``<stem>.md``."""
    df = pd.DataFrame(rows)
    csv_path, md_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    df.to_csv(csv_path, index=False, float_format="%.4f")
    header = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    body = "".join(
        "| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in r) + " |\n"
        for r in df.itertuples(index=False)
    )
    md_path.write_text(f"# {stem}\n\n" + header + body)
    return [csv_path, md_path]


def log_to_mlflow(
    metrics: dict[str, float],
    files: list[Path],
    run_id: str | None,
    experiment_id: str | None,
    downstream_dir: Path | None = None,
) -> str:
    """Log metrics and files as a child run ``evaluate`` of the training run (a new run in
    ``experiment_id`` when the training run is not in this store), with the downstream sets of
    ``downstream_dir`` as its input datasets. Returns the run id.
    """
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    parent = None
    if run_id:
        try:
            parent = client.get_run(run_id)
        except Exception:  # noqa: BLE001 - run from another store
            parent = None
    exp = parent.info.experiment_id if parent is not None else experiment_id
    tags = {"mlflow.parentRunId": parent.info.run_id} if parent is not None else {}
    with mlflow.start_run(experiment_id=exp, run_name="evaluate", tags=tags) as run:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
        for f in files:
            mlflow.log_artifact(str(f), artifact_path="eval")
        if downstream_dir is not None:
            sets = downstream_datasets(downstream_dir)
            log_inputs(client, run.info.run_id, [LoggedInput(d, "evaluation") for d in sets])
        return run.info.run_id
