"""The model card: the Markdown description of a registered model version."""

from __future__ import annotations

from typing import Any

# metrics shown first in the card's evaluation table, in this order
KEY_METRICS = ("linear_acc", "knn_acc", "macro_f1", "map", "miou")


def evaluation_table(metrics: dict[str, float]) -> str:
    """Markdown table: metric, pre-trained, random-init twin, gain (absolute, in the metric's
    units); the label-scarce probes (``k<k>_<metric>``) with their spread over the draws.
    """
    bases = sorted(
        {k for k in metrics if not k.endswith(("_random", "_gain", "_std"))},
        key=lambda k: (
            k.startswith("k") and k.split("_", 1)[0][1:].isdigit(),
            next((i for i, m in enumerate(KEY_METRICS) if m in k), len(KEY_METRICS)),
            k,
        ),
    )
    if not bases:
        return "_No evaluation metrics were given._"

    def cell(key: str, fmt: str) -> str:
        if key not in metrics:
            return ""
        std = metrics.get(f"{key}_std")
        return f"{metrics[key]:{fmt}}" + ("" if std is None else f" ± {std:.4f}")

    lines = ["| metric | pre-trained | random init | gain |", "|---|---:|---:|---:|"]
    for key in bases:
        lines.append(
            f"| {key} | {cell(key, '.4f')} | {cell(key + '_random', '.4f')} | "
            f"{cell(key + '_gain', '+.4f')} |"
        )
    return "\n".join(lines)


def render_model_card(
    name: str,
    preset: str,
    lineage: dict[str, str],
    training: dict[str, Any],
    metrics: dict[str, float],
    spec: dict[str, Any] | None = None,
) -> str:
    """Markdown model card for a version's description.

    Args:
        name: registered model name.
        preset: model preset (e.g. ``skysense-tiny``).
        lineage: ``data_version``, ``git_commit``, ``params_hash``, ``checkpoint_sha256``, ...
        training: summary of the training run (step, run id, loss, ...).
        metrics: flat evaluation metrics (``linear_acc``, ``linear_acc_random``, ...).
        spec: the preset's fields (embed dim, input sizes), optional.
    """
    lines = [
        f"# {name} ({preset})",
        "",
        (
            "SkySense-style multi-modal remote-sensing encoder (HR optical, Sentinel-2 and "
            "Sentinel-1 time series, DEM). The pyfunc takes arrays of the modalities in physical "
            "units (S2 reflectance, S1 dB) with their days of year and returns per-pixel "
            "embeddings "
            "`B x D x H x W` on the 10 m grid."
        ),
        "",
        "## Lineage",
        "",
    ]
    lines += [f"- **{k}**: `{v}`" for k, v in lineage.items()]
    lines += ["", "## Training", ""]
    lines += [f"- **{k}**: {v}" for k, v in training.items()] or ["- (no summary)"]
    if spec:
        keep = {k: v for k, v in spec.items() if isinstance(v, (int, float, str, bool))}
        lines += ["", "## Preset", ""]
        lines += [f"- {k}: {v}" for k, v in sorted(keep.items())]
    lines += [
        "",
        "## Evaluation (frozen encoder)",
        "",
        (
            "Gain = pre-trained minus the same probe on a randomly initialised encoder of the same "
            "preset."
        ),
        "",
        evaluation_table(metrics),
        "",
    ]
    return "\n".join(lines)
