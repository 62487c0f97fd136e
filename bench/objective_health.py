r"""Is the pre-training objective learning, or collapsing? Per stream, step by step.

    python bench/objective_health.py --places 50 --heldout 8 --steps 200 --objective paper \\
        --set data.sample.size_px=32 --set model.overrides.date_init=annual \\
        --set model.overrides.date_smoothing_days=15

Runs the pre-training of ``bench/pretrain_gain.py`` (same data, same optimizer, same loop; the
sample and chips are cached under ``--work``) and prints, every ``--every`` steps:

* each stream's loss per level, against ``ln K`` (K = ``train.paper.head_prototypes``): a
  distillation term that sits at ``ln K`` is a student predicting the uniform distribution,
  which is what it learns from a teacher that has collapsed to uniform;
* the teacher's health per stream (``paper`` only; ``teacher_entropy_<stream>`` and
  ``teacher_usage_<stream>``, :class:`skysense.models.distillation.TeacherHealth`, nats): mean
  row entropy (``ln K``: uniform collapse) and entropy of the batch's mean (near 0: one-prototype
  collapse);
* every ``--rank-every`` steps, the effective rank (Roy and Vetterli 2007: ``exp`` of the
  entropy of the normalised singular values) of the teacher's and the student's features on a
  fixed batch of pre-training chips, per stream, pooled per sample and per pixel: features that
  crowd into a few directions are what a k-NN probe far below a linear one points to.

Ends with one verdict line per stream. Nothing here is a target: the figures are for choosing
an objective's settings before a long ``pretrain_gain`` run (README, "Does pre-training help?").
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gain_protocol import place_overrides, prepare_data
from pretrain_gain import pretrain

from skysense.config import apply_overrides, config_from_dict, training_job
from skysense.models.distillation import entropy
from skysense.models.paper_objective import LEVELS
from skysense.models.pretraining import STREAMS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``--help``)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--set", dest="overrides", action="append", default=[], help="dotted k=v")
    p.add_argument("--places", type=int, default=None, help="pre-training places")
    p.add_argument("--heldout", type=int, default=None, help="held-out places")
    p.add_argument("--steps", type=int, default=100, help="pre-training steps (train.steps)")
    p.add_argument("--objective", choices=("paper", "legacy"), default=None)
    p.add_argument("--every", type=int, default=25, help="print every N steps")
    p.add_argument("--rank-every", type=int, default=100, help="effective ranks every N steps")
    p.add_argument("--rank-batch", type=int, default=16, help="chips in the fixed batch")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path, default=Path("/tmp/skysense-pretrain-gain"))
    p.add_argument("--json", type=Path, default=None, help="write the rows as JSON here")
    return p.parse_args(argv)


def effective_rank(x: torch.Tensor) -> float:
    """``exp(H(s / sum s))`` of the singular values ``s`` of the centred rows ``N x D``."""
    x = x.double() - x.double().mean(0, keepdim=True)
    s = torch.linalg.svdvals(x)
    if float(s.sum()) == 0.0:
        return 0.0
    return float(torch.exp(entropy(s / s.sum())))


@torch.no_grad()
def feature_ranks(encoder: torch.nn.Module, batch: dict[str, Any]) -> dict[str, float]:
    """Effective rank per stream of a fixed batch: ``<stream>`` pooled per sample (dates and
    pixels), ``<stream>_pixel`` every pixel of the first date.
    """
    from skysense.models.pretraining import _Views

    was = encoder.training
    encoder.eval()
    views = _Views(encoder(batch))
    encoder.train(was)
    out = {}
    for name, maps in views.maps.items():  # B x T x C x h x w
        out[name] = effective_rank(maps.float().mean((1, -2, -1)))
        pix = maps[:, 0].float().flatten(-2).transpose(-1, -2).reshape(-1, maps.shape[2])
        out[f"{name}_pixel"] = effective_rank(pix)
    return out


def fixed_batch(cfg: Any, chips: Path, model: Any, size: int) -> dict[str, Any]:
    """The first ``size`` pre-training chips of a fixed shuffle, collated."""
    from skysense.data.dataset import collate_samples
    from skysense.training.loop import chip_dataset
    from skysense.training.sampling import EpochShardStream, batch_iterator

    dataset = chip_dataset(training_job(cfg), chips, model)
    stream = EpochShardStream(len(dataset), 0, 1, min(size, len(dataset)), 12345)
    return next(batch_iterator(stream, dataset, collate_samples, 0, seed=12345))


def verdicts(rows: list[dict[str, Any]], ranks: list[dict[str, Any]], ln_k: float) -> list[str]:
    """One line per stream from the last quarter of the rows and the first/last ranks."""
    tail = rows[-max(1, len(rows) // 4) :]
    out = []
    for name in STREAMS:
        levels = [f"{lv}_{name}" for lv in LEVELS if f"{lv}_{name}" in tail[-1]]
        if not levels:
            continue
        loss = {k: float(np.mean([r[k] for r in tail])) for k in levels}
        ent = [r[f"teacher_entropy_{name}"] for r in tail if f"teacher_entropy_{name}" in r]
        use = [r[f"teacher_usage_{name}"] for r in tail if f"teacher_usage_{name}" in r]
        notes = []
        if ent and np.mean(ent) >= 0.95 * ln_k:
            notes.append("teacher collapsed to uniform")
        elif use and np.mean(use) < 0.5:
            notes.append("teacher collapsed onto one prototype")
        if ent and all(v >= 0.97 * ln_k for v in loss.values()):
            notes.append("every level at ln K (the student predicts nothing)")
        first, last = ranks[0]["teacher"], ranks[-1]["teacher"]
        if name in first and len(ranks) > 1:
            r0, r1 = first[name], last[name]
            p0, p1 = first[f"{name}_pixel"], last[f"{name}_pixel"]
            notes.append(f"teacher rank {r0:.1f} -> {r1:.1f} pooled, {p0:.1f} -> {p1:.1f} per px")
            if r1 < 0.5 * r0:
                notes.append("features crowd into fewer directions")
        health = f"; teacher entropy {np.mean(ent):.2f}, usage {np.mean(use):.2f}" if ent else ""
        lines = ", ".join(f"{k.split('_')[0]} {v:.2f}" for k, v in loss.items())
        verdict = "; ".join(notes) if notes else "no sign of collapse"
        out.append(f"{name}: loss {lines}{health} -> {verdict}")
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the pre-training, print the health rows and the verdicts, return them."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = place_overrides(args.places, args.heldout) + [f"train.steps={args.steps}"]
    if args.objective:
        overrides.append(f"train.objective={args.objective}")
    overrides += args.overrides
    cfg = config_from_dict(apply_overrides({}, overrides), "<bench>")
    _, chips = prepare_data(cfg, args.work)
    ln_k = math.log(cfg.train.paper.head_prototypes)
    rows: list[dict[str, Any]] = []
    ranks: list[dict[str, Any]] = []
    state: dict[str, Any] = {"batch": None, "t0": time.perf_counter()}

    def rank_row(step: int, model: Any) -> None:
        if state["batch"] is None:
            state["batch"] = fixed_batch(cfg, chips, model, args.rank_batch)
        row = {
            "step": step,
            "teacher": feature_ranks(model.teacher_module["encoder"], state["batch"]),
            "student": feature_ranks(model.student, state["batch"]),
        }
        ranks.append(row)
        for who in ("teacher", "student"):
            text = ", ".join(f"{k} {v:.1f}" for k, v in row[who].items())
            print(f"  step {step} effective rank, {who}: {text}", flush=True)

    def on_step(step: int, out: dict[str, Any], model: Any) -> None:
        if step == 1:
            rank_row(0, model)  # one step in: the teacher is still the initial encoder
        row = {"step": step}
        row.update(
            {k: float(v.detach()) for k, v in out.items() if torch.is_tensor(v) and v.numel() == 1}
        )
        rows.append(row)
        if step % args.every == 0 or step == 1 or step == args.steps:
            per = []
            for name in STREAMS:
                parts = [f"{row[f'{lv}_{name}']:.2f}" for lv in LEVELS if f"{lv}_{name}" in row]
                if not parts:
                    continue
                h = ""
                if f"teacher_entropy_{name}" in row:
                    h = (
                        f" (t {row[f'teacher_entropy_{name}']:.2f}"
                        f"/{row[f'teacher_usage_{name}']:.2f})"
                    )
                per.append(f"{name} {'/'.join(parts)}{h}")
            elapsed = time.perf_counter() - state["t0"]
            print(
                f"step {step}: loss {row['loss']:.2f}; {'; '.join(per)} [{elapsed:.0f} s]",
                flush=True,
            )
        if step % args.rank_every == 0 or step == args.steps:
            rank_row(step, model)

    print(
        f"settings: {' '.join(overrides)}; objective {cfg.train.objective}; ln K = {ln_k:.2f}; "
        "per stream: pixel/object/image loss (teacher entropy/usage, nats)",
        flush=True,
    )
    pretrain(cfg, chips, on_step=on_step)
    lines = verdicts(rows, ranks, ln_k)
    print("\n".join(lines))
    result = {"settings": overrides, "ln_k": ln_k, "rows": rows, "ranks": ranks, "verdicts": lines}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
