"""Labelled samples for fine-tuning: which label set, split by place, class list, targets.

Label sets (all read by the data layer into :class:`skysense.data.downstream.SampleList`):
``segmentation`` / ``classification`` (the downstream sets of the sample, or a team's own
chips in that layout), ``eurosat`` (the EuroSAT folder layout, one class per scene) and
``bigearthnet`` (BigEarthNet-MM, multi-label scenes). The held-out places
(``finetune.heldout_locations``, default the last location by name) never reach the optimizer:
the fine-tuned model, its random-init twin and the frozen probe are all scored on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from skysense.core.errors import SkySenseError
from skysense.data.benchmarks import load_bigearthnet, load_eurosat
from skysense.data.catalog_labels import load_catalog_labels
from skysense.data.downstream import Kind, SampleList, load_downstream
from skysense.evaluation.features import samples_to_batch
from skysense.finetuning.settings import ClassSpec

IGNORE = 255
#: Default palette (RGB) for classes without a colour in params.yaml: tab20-like.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
)  # fmt: skip
#: the task model's task for a label set's task (the data layer calls one class per scene
#: ``multiclass``)
TASK_OF_SET = {"multiclass": "classification"}
LABEL_SETS = ("segmentation", "classification", "eurosat", "bigearthnet", "catalog")


class LabelError(SkySenseError):
    """Labels that cannot be fine-tuned on (a class list that does not fit, no place to hold
    out).
    """


@dataclass
class LabelledSplit:
    """The samples of a label set split by place.

    Attributes:
        task: ``segmentation``, ``classification`` or ``multilabel``.
        classes: name and colour per class id.
        train: samples fine-tuned on; heldout: samples scored.
        heldout_locations: the held-out places.
    """

    task: str
    classes: list[ClassSpec]
    train: list[dict[str, Any]]
    heldout: list[dict[str, Any]]
    heldout_locations: list[str]


def load_label_set(
    kind: str,
    root: Path,
    n_regions: int,
    *,
    catalog: Path | None = None,
    classes: Sequence[ClassSpec] = (),
) -> SampleList:
    """Read a label set (``LABEL_SETS``) from ``root``.

    ``segmentation``/``classification`` read ``root/<kind>/index.csv`` (the downstream layout);
    ``eurosat`` reads ``root/<ClassName>/*.tif``; ``bigearthnet`` BigEarthNet-MM patch folders;
    ``catalog`` the chips folder ``root`` with the ``labels:`` rasters of ``catalog``'s
    locations, whose classes are ``classes`` (``finetune.classes``).
    """
    if kind == "catalog":
        if catalog is None or not classes:
            raise LabelError(
                "--labels catalog needs the catalog (--catalog) and the class list of its label "
                "rasters in finetune.classes (name and colour per class id)"
            )
        return load_catalog_labels(catalog, root, [c.name for c in classes], n_regions)
    if kind in ("segmentation", "classification"):
        return load_downstream(root, cast(Kind, kind), n_regions=n_regions)
    if kind == "eurosat":
        return load_eurosat(root, n_regions=n_regions)
    if kind == "bigearthnet":
        return load_bigearthnet(root, n_regions=n_regions)
    raise LabelError(f"unknown label set {kind!r}; use one of {', '.join(LABEL_SETS)}")


def class_list(
    names: Sequence[str], configured: Sequence[ClassSpec], source: str
) -> list[ClassSpec]:
    """The classes of a task: ``finetune.classes`` when given (must match the label set's names,
    in order), else the set's names with the default palette.

    Raises:
        LabelError: the configured list does not match the label set's classes.
    """
    if configured:
        got = [c.name for c in configured]
        if got != list(names):
            raise LabelError(
                f"finetune.classes lists {got}, but {source} has the classes {list(names)} (by "
                "id); list the same names in the same order, or leave finetune.classes empty"
            )
        return list(configured)
    return [ClassSpec(name=n, colour=PALETTE[i % len(PALETTE)]) for i, n in enumerate(names)]


def split_by_place(
    samples: SampleList, heldout: Sequence[str] | None, classes: Sequence[ClassSpec], source: str
) -> LabelledSplit:
    """Split ``samples`` into fine-tuning and held-out places.

    Samples without a ``location`` (EuroSAT, BigEarthNet) are split by a fixed rule instead:
    every fifth sample is held out (the last one of a set of fewer than five).

    Raises:
        LabelError: a named place is not in the set, or a side of the split would be empty.
    """
    locs = [str(s.get("location", "")) for s in samples]
    places = sorted(set(locs) - {""})
    if places and (len(places) >= 2 or heldout):
        chosen = list(heldout) if heldout else [places[-1]]
        unknown = sorted(set(chosen) - set(places))
        if unknown:
            raise LabelError(
                f"finetune.heldout_locations names {unknown}, not places of {source} ({places})"
            )
        test_mask = np.array([loc in chosen for loc in locs])
    else:
        chosen = []
        test_mask = np.arange(len(samples)) % 5 == 4
        if not test_mask.any() and len(samples) >= 2:  # fewer than 5: hold out the last one
            test_mask[-1] = True
    train = [s for s, t in zip(samples, test_mask) if not t]
    test = [s for s, t in zip(samples, test_mask) if t]
    if not train or not test:
        raise LabelError(
            f"{source}: {len(train)} samples to fine-tune on and {len(test)} held out; a task "
            "needs both: label more places or set finetune.heldout_locations"
        )
    task = TASK_OF_SET.get(samples.task, samples.task)
    return LabelledSplit(task, list(classes), train, test, chosen)


def targets(samples: Sequence[dict[str, Any]], task: str) -> torch.Tensor:
    """Stacked targets: ``mask`` N x s x s int64 (segmentation; 255 unlabelled), ``label`` N
    int64 (classification) or N x K float32 multi-hot (multilabel).
    """
    if task == "segmentation":
        return torch.from_numpy(np.stack([np.asarray(s["mask"], dtype=np.int64) for s in samples]))
    if task == "multilabel":
        return torch.from_numpy(
            np.stack([np.asarray(s["label"], dtype=np.float32) for s in samples])
        )
    return torch.as_tensor([int(s["label"]) for s in samples], dtype=torch.int64)


def class_weights(
    samples: Sequence[dict[str, Any]], task: str, n_classes: int, rule: Any
) -> list[float] | None:
    """Cross-entropy weights: ``none`` (None), ``balanced`` (inverse frequency, mean 1, classes
    absent from the training labels get 0) or an explicit list (one per class).
    """
    if isinstance(rule, list):
        if len(rule) != n_classes:
            raise LabelError(
                f"finetune.class_weights has {len(rule)} values for {n_classes} classes"
            )
        return [float(w) for w in rule]
    if rule == "none":
        return None
    y = targets(samples, task).numpy()
    if task == "multilabel":
        counts = y.sum(axis=0)
    else:
        y = y[y != IGNORE]
        counts = np.bincount(y.reshape(-1), minlength=n_classes)[:n_classes].astype(float)
    w = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    present = w > 0
    w[present] *= present.sum() / w[present].sum()
    return [float(v) for v in w]


def collate_labelled(
    samples: Sequence[dict[str, Any]],
    stats: dict[str, Any] | None,
    modalities: Sequence[str],
    task: str,
) -> dict[str, Any]:
    """A model batch (normalised, as for evaluation) with its ``target``."""
    batch = samples_to_batch(samples, stats, modalities, "cpu")
    batch["target"] = targets(samples, task)
    return batch
