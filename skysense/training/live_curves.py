"""Training curves for DVC: every loss term, the learning rate and the EMA momentum per step.

DVCLive writes them beside the checkpoints folder (``<paths.checkpoints>/../dvclive``:
``metrics.json`` with the last step's values, ``plots/metrics/<name>.tsv`` with one row per
step), which ``dvc.yaml`` declares as the train stage's metrics and plots. ``dvc exp show``
then lists each experiment's last values and ``dvc plots diff`` draws the curves of
``dvc exp run -S train.lr=...`` experiments side by side. MLflow keeps its own copy of the same
curves (:mod:`skysense.training.tracking`). Only rank 0 writes; a resumed run continues the
curves from the step it resumes at (rows past it, from a killed run, are dropped first).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

CURVES_DIR = "dvclive"
#: what goes to DVC per step besides the loss terms (the rest stays in MLflow and train_log.csv)
SCHEDULE_KEYS = ("lr", "ema_momentum")


def curves_dir(out_dir: str | Path) -> Path:
    """The DVCLive folder of a training run whose checkpoints are in ``out_dir``."""
    return Path(out_dir).resolve().parent / CURVES_DIR


def _trim(plots: Path, last_step: int) -> None:
    """Drop rows past ``last_step`` from every curve (a killed run wrote past its checkpoint)."""
    for tsv in plots.rglob("*.tsv"):
        with open(tsv, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if not rows or "step" not in rows[0]:
            continue
        kept = [r for r in rows if int(r["step"]) <= last_step]
        if len(kept) != len(rows):
            with open(tsv, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
                writer.writeheader()
                writer.writerows(kept)


class LiveCurves:
    """DVCLive logger of one training run (rank 0).

    Args:
        folder: the DVCLive folder (:func:`curves_dir`).
        start_step: the step training starts after (0, or the resumed checkpoint's step).
        loss_keys: the loss terms to log (``loss`` and each weighted component).
    """

    def __init__(self, folder: str | Path, start_step: int, loss_keys: tuple[str, ...]) -> None:
        from dvclive import Live

        folder = Path(folder)
        resume = start_step > 0 and folder.is_dir()
        if resume:
            _trim(folder / "plots", start_step)
        # no dvc.yaml of its own (the project's declares the curves), no experiment commits:
        # `dvc exp run` makes the experiment, DVCLive only writes the files
        self.live = Live(
            dir=str(folder), resume=resume, save_dvc_exp=False, dvcyaml=None, report=None
        )
        self.live.step = start_step
        self.loss_keys = loss_keys

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        """Log one optimizer step (non-finite values are skipped)."""
        self.live.step = step
        for key in (*self.loss_keys, *SCHEDULE_KEYS):
            value = metrics.get(key)
            if value is not None and math.isfinite(value):
                self.live.log_metric(f"train/{key}", float(value))
        self.live.make_summary()

    def close(self) -> None:
        """Write the summary and close."""
        self.live.end()
