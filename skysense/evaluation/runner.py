"""``skysense evaluate``: the exported encoder and its random-init twin on the downstream sets.

For every set the same probes, features (``eval.pooling``), folds and seed run on both encoders;
folds leave one held-out location out (``eval.split: location``), so a probe is always tested on a
place it never saw; ``metrics.json`` holds flat
keys ``<metric>``, ``<metric>_random`` and ``<metric>_gain`` (pre-trained minus random, in the
metric's 0..1 units) for ``linear_acc``, ``knn_acc``, ``macro_f1``, ``miou`` and, for
BigEarthNet-MM, ``map`` (EuroSAT metrics are prefixed ``eurosat_``): the probes fitted on every
label. The label-scarce probes (:mod:`skysense.evaluation.few_shot`; ``eval.shots`` labelled
samples per class, ``eval.draws`` draws) add ``k<k>_<metric>`` with ``_std``, ``_random``,
``_random_std``, ``_gain`` and ``_gain_std`` for ``linear_acc``, ``macro_f1``, ``knn_acc``,
``miou`` and ``pixel_acc`` (e.g. ``k5_linear_acc_gain``): any of them can drive the promotion
policy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skysense.core.atomic_files import write_text_atomic
from skysense.data.benchmarks import load_bigearthnet, load_eurosat
from skysense.data.downstream import load_downstream
from skysense.evaluation import few_shot, report, tasks
from skysense.evaluation.features import embed_samples
from skysense.evaluation.settings import EvalConfig
from skysense.models import create_model
from skysense.models.batch import resolve_device
from skysense.models.export_format import load_exported
from skysense.models.skysense import SkySense


def random_twin(config: dict[str, Any], seed: int) -> SkySense:
    """A randomly initialised encoder of the export's preset and overrides (seeded)."""
    torch.manual_seed(seed)
    return create_model(config["preset"], **(config.get("overrides") or {})).eval()


def _with_baseline(
    metrics: dict[str, float], baseline: dict[str, float] | None, prefix: str = ""
) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        out[name] = float(value)
        if baseline is not None and key in baseline:
            out[f"{name}_random"] = float(baseline[key])
            out[f"{name}_gain"] = float(value) - float(baseline[key])
    return out


def evaluate_export(
    ev: EvalConfig,
    modalities: Sequence[str],
    export_dir: Path,
    downstream: Path,
    out_dir: Path,
    device: str | None = None,
) -> dict[str, Any]:
    """Run every downstream evaluation and write the report to ``out_dir``.

    Args:
        ev: the ``eval`` settings.
        modalities: the modalities the encoder is fed (``model.modalities``).
        export_dir: the encoder export (``model.safetensors`` + ``config.json``).
        downstream: the downstream sets' folder.
        out_dir: where ``metrics.json``, the pictures and tables go.
        device: ``cpu``/``cuda`` (default: ``ev.device``).

    Returns:
        ``{"metrics": flat dict, "files": [paths], "config": export config}``.
    """
    device = resolve_device(device or ev.device)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, config = load_exported(export_dir, device=device)
    stats = config.get("stats")
    mods = list(modalities)
    encoders = {"pretrained": model}
    if ev.random_baseline:
        encoders["random"] = random_twin(config, ev.seed).to(device)
    metrics: dict[str, float] = {}
    files: list[Path] = []

    def groups_of(samples) -> np.ndarray | None:
        if ev.split != "location" or not all("location" in s for s in samples):
            return None
        return np.array([str(s["location"]) for s in samples])

    def run_classification(samples, prefix: str, title: str) -> None:
        labels = np.array([int(s["label"]) for s in samples])
        n = len(samples.class_names)
        feats = {
            k: embed_samples(m, samples, stats, mods, ev.batch_size, device, pooling=ev.pooling)[0]
            for k, m in encoders.items()
        }
        res = {
            k: tasks.classification(f, labels, n, ev, groups=groups_of(samples))
            for k, f in feats.items()
        }
        base = res["random"].metrics if "random" in res else None
        metrics.update(_with_baseline(res["pretrained"].metrics, base, prefix))
        shots = few_shot.few_shot_table(
            feats, labels, n, ev, ev.shots, ev.draws, groups=groups_of(samples)
        )
        for k, per_encoder in shots.items():
            metrics.update(
                {f"{prefix}{key}": v for key, v in few_shot.summarise(per_encoder, k).items()}
            )
        confusion = res["pretrained"].confusion
        if confusion is None:
            raise RuntimeError(f"{prefix or 'classification'}: the probe returned no confusion")
        files.append(
            report.confusion_png(
                confusion,
                samples.class_names,
                out_dir / f"{prefix}confusion.png",
                title,
            )
        )
        rows = [
            {
                "class": c,
                "support": int(res["pretrained"].per_class["support"][i]),
                "f1": float(np.nan_to_num(res["pretrained"].per_class["f1"][i])),
                **(
                    {"f1_random": float(np.nan_to_num(res["random"].per_class["f1"][i]))}
                    if "random" in res
                    else {}
                ),
            }
            for i, c in enumerate(samples.class_names)
        ]
        files.extend(report.per_class_tables(rows, out_dir, f"{prefix}per_class_classification"))

    cls = load_downstream(downstream, "classification", n_regions=model.spec.n_regions)
    run_classification(cls, "", "linear probe, held-out classification")

    seg = load_downstream(downstream, "segmentation", n_regions=model.spec.n_regions)
    masks = np.stack([s["mask"] for s in seg])
    seg_res: dict[str, tuple[tasks.TaskResult, dict[str, np.ndarray]]] = {}
    seg_pixels: dict[str, np.ndarray] = {}
    for key, m in encoders.items():
        _, pixels = embed_samples(m, seg, stats, mods, ev.batch_size, device, keep_pixels=True)
        if pixels is None:
            raise RuntimeError("embed_samples(keep_pixels=True) returned no per-pixel maps")
        seg_pixels[key] = pixels
        seg_res[key] = tasks.segmentation(
            pixels, masks, len(seg.class_names), ev, groups=groups_of(seg)
        )
        if key == "pretrained":
            files.append(
                report.pca_png(
                    pixels[0], out_dir / "pca_embeddings.png", f"PCA of embeddings, {seg[0]['id']}"
                )
            )
    base = seg_res["random"][0].metrics if "random" in seg_res else None
    metrics.update(_with_baseline(seg_res["pretrained"][0].metrics, base))
    for k, per_encoder in few_shot.few_shot_segmentation(
        seg_pixels,
        masks,
        len(seg.class_names),
        ev,
        ev.shots if ev.seg_shots is None else ev.seg_shots,
        ev.draws,
        groups=groups_of(seg),
    ).items():
        metrics.update(few_shot.summarise(per_encoder, k))
    del seg_pixels
    head = seg_res["pretrained"][1]
    head_arrays: dict[str, Any] = {"classes": np.array(seg.class_names), **head}
    np.savez(out_dir / "seg_head.npz", **head_arrays)
    files.append(out_dir / "seg_head.npz")
    rows = [
        {
            "class": c,
            "support_px": int(seg_res["pretrained"][0].per_class["support"][i]),
            "iou": float(np.nan_to_num(seg_res["pretrained"][0].per_class["iou"][i])),
        }
        for i, c in enumerate(seg.class_names)
    ]
    files.extend(report.per_class_tables(rows, out_dir, "per_class_segmentation"))

    if ev.eurosat is not None:
        run_classification(
            load_eurosat(ev.eurosat, n_regions=model.spec.n_regions),
            "eurosat_",
            "linear probe, EuroSAT",
        )
    if ev.bigearthnet is not None:
        ben = load_bigearthnet(ev.bigearthnet, n_regions=model.spec.n_regions)
        labels = np.stack([np.asarray(s["label"], dtype=np.float32) for s in ben])
        res = {
            k: tasks.multilabel(
                embed_samples(m, ben, stats, mods, ev.batch_size, device, pooling=ev.pooling)[0],
                labels,
                ev,
                groups=groups_of(ben),
            )
            for k, m in encoders.items()
        }
        metrics.update(
            _with_baseline(
                res["pretrained"].metrics, res["random"].metrics if "random" in res else None
            )
        )
    write_text_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
    files.insert(0, out_dir / "metrics.json")
    return {"metrics": metrics, "files": files, "config": config}
