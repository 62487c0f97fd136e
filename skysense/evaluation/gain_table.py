"""The pre-trained encoder against its random-init twin as text lines, from flat metrics.

Used by ``skysense evaluate`` and the pipeline summary (``make run``): every label and the
label-scarce probes (``k<k>_<metric>`` keys of :mod:`skysense.evaluation.few_shot`) side by side.
No heavy imports: the command line loads it at start.
"""

from __future__ import annotations

GAIN_PROBES = (("linear_acc", "linear"), ("knn_acc", "k-NN"), ("miou", "seg mIoU"))
GAIN_METRICS = tuple(m for m, _ in GAIN_PROBES)


def gain_lines(metrics: dict[str, float], shots: list[int] | None = None) -> list[str]:
    """The pre-trained encoder against its twin, one line per probe and label budget: every
    label (``<metric>``), then ``k`` labels per class (``k<k>_<metric>``, mean +- spread over
    the draws). ``shots``: the ``k`` to show (default: every ``k`` found in ``metrics``).
    """
    if shots is None:
        found = {
            key.split("_", 1)[0][1:]
            for key in metrics
            if key.startswith("k") and key.split("_", 1)[0][1:].isdigit()
        }
        shots = sorted(int(k) for k in found)
    lines = [f"{'probe':9s} {'labels':>8s} {'pre-trained':>15s} {'twin':>15s} {'gain':>15s}"]

    def cell(key: str) -> str:
        if key not in metrics:
            return f"{'':>15s}"
        std = metrics.get(f"{key}_std")
        return f"{metrics[key]:8.4f} +-{std:.3f}" if std is not None else f"{metrics[key]:15.4f}"

    for metric, label in GAIN_PROBES:
        for k in ["all", *shots]:
            key = metric if k == "all" else f"k{k}_{metric}"
            if key not in metrics:
                continue
            budget = "all" if k == "all" else f"{k}/class"
            gain = key + "_gain"
            g = (
                f"{metrics[gain]:+8.4f} +-{metrics[gain + '_std']:.3f}"
                if gain + "_std" in metrics
                else (f"{metrics[gain]:+15.4f}" if gain in metrics else "")
            )
            lines.append(f"{label:9s} {budget:>8s} {cell(key)} {cell(key + '_random')} {g:>15s}")
    return lines
