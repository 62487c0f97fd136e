"""Fine-tuning report pictures: predicted vs true class maps of held-out chips, in class colours."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from skysense.finetuning.labels import IGNORE


def colourise(classes: np.ndarray, colours: Sequence[Sequence[int]]) -> np.ndarray:
    """Class map ``H x W`` -> RGB ``H x W x 3`` uint8 (unlabelled 255 in black)."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(colours)] = np.asarray(colours, dtype=np.uint8)
    lut[IGNORE] = 0
    return lut[np.clip(classes, 0, 255).astype(np.uint8)]


def _unit_rgb(colour: Sequence[int]) -> tuple[float, float, float]:
    """An ``[r, g, b]`` 0..255 class colour as matplotlib's 0..1 triple."""
    r, g, b = (float(v) / 255.0 for v in colour)
    return r, g, b


def prediction_png(
    truth: np.ndarray | Sequence[np.ndarray],
    pred: np.ndarray | Sequence[np.ndarray],
    ids: Sequence[str],
    class_names: Sequence[str],
    colours: Sequence[Sequence[int]],
    path: Path,
    title: str,
    max_chips: int = 8,
) -> Path:
    """PNG: true (top row) and predicted (bottom row) class maps of up to ``max_chips`` held-out
    chips, with a legend of the class colours.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    n = min(max_chips, len(truth))
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n + 2.2, 3.6), squeeze=False)
    for j in range(n):
        for i, (maps, label) in enumerate(((truth, "true"), (pred, "predicted"))):
            ax = axes[i][j]
            ax.imshow(colourise(np.asarray(maps[j]), colours), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
            if i == 0:
                ax.set_title(ids[j][-12:], fontsize=6)
    handles = [Patch(color=_unit_rgb(c), label=name) for name, c in zip(class_names, colours)]
    fig.legend(handles=handles, loc="center right", fontsize=6, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.82, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
