"""Does pre-training help? The pre-trained encoder against its random-init twin, the
supervised bound and the raw spectra, with few and with all labels.

    python bench/pretrain_gain.py --places 6 --steps 40             # make run's scale
    python bench/pretrain_gain.py --places 50 --steps 1000          # the bench (about 1 h, 2 cores)
    python bench/pretrain_gain.py --places 12 --steps 200 --supervised-steps 0 --json out.json

Runs the library path of ``make run`` in one process, without DeepSpeed: ``write_sample`` (with
``--places`` pre-training places) -> ``chip_catalog`` -> ``compute_stats`` -> a plain PyTorch loop
over :class:`SkySensePretrainer` with the configured optimizer (AdamW, warm-up + cosine, grad
clip, EMA teacher; batch = ``micro_batch x nproc x grad_accum`` as the distributed run's
effective batch; ``--steps`` steps) -> the probes of ``bench/gain_protocol.py`` on the held-out
classification and segmentation chips: k labelled samples per class (``eval.shots``, 1, 5, 20)
over ``eval.draws`` draws (mean +- spread, paired between encoders) and all labels; linear
probe, k-NN and segmentation head; for the pre-trained encoder (``train.export_encoder``), the
random-init twin (same preset, same inputs, same probes, random weights: ``torch.manual_seed
(eval.seed)`` then ``create_model``, as ``skysense evaluate``), the supervised bound
(``bench/supervised_bound.py``: the same encoder trained with the pre-training places' labels,
``--supervised-steps``, default ``--steps``; 0 skips it) and the raw spectra (no encoder).

Targets (issue 19): pre-trained beats the twin by at least 10 points at 5 labels per class here,
and by a positive margin beyond its spread in ``make run``. The sample, chips and trained encoders
are cached under ``--work``, so a rerun that changes only the evaluation skips them. Prints the
whole table and the seconds of each stage. Current figures and their sizes: README, "Does
pre-training help?".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gain_protocol import (
    PROBES,
    evaluate_table,
    place_overrides,
    prepare_data,
    print_table,
    twins,
    weakest_gain,
)

from skysense.config import apply_overrides, config_from_dict, training_job


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The bench's options (places, steps, objective, probes, overrides)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--set", action="append", default=[], dest="overrides", help="dotted config k=v")
    p.add_argument("--places", type=int, default=None, help="pre-training places (data.sample)")
    p.add_argument("--heldout", type=int, default=None, help="held-out places (data.sample)")
    p.add_argument("--steps", type=int, default=None, help="pre-training steps (train.steps)")
    p.add_argument(
        "--supervised-steps",
        type=int,
        default=None,
        help="steps of the supervised bound (default: --steps; 0: skip it)",
    )
    p.add_argument("--work", type=Path, default=Path("/tmp/skysense-pretrain-gain"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--encoder",
        choices=("student", "teacher"),
        default=None,
        help=(
            "which trained encoder to probe (default: train.export_encoder, what training exports)"
        ),
    )
    p.add_argument(
        "--objective",
        choices=("paper", "legacy"),
        default=None,
        help="pre-training objective (train.objective; default: the configured one)",
    )
    p.add_argument("--no-seg", action="store_true", help="skip the segmentation probes")
    p.add_argument("--json", type=Path, default=None, help="write the table as JSON here")
    return p.parse_args(argv)


def pretrain(
    cfg: Any, chips: Path, on_step: Callable[[int, dict[str, Any], Any], None] | None = None
) -> tuple[torch.nn.Module, list[float]]:
    """Plain single-process pre-training with the configured optimizer; returns the pre-trainer
    (student, EMA teacher, heads) and the loss of each step. ``on_step(step, out, pre-trainer)``,
    when given, sees each step's output dict after the optimizer and teacher updates
    (``bench/objective_health.py``).
    """
    from skysense.data.dataset import collate_samples
    from skysense.training.loop import chip_dataset, pretrainer_from_config, seed_everything
    from skysense.training.sampling import EpochShardStream, batch_iterator
    from skysense.training.schedule import WarmupCosineSchedule, ema_momentum_at, param_groups

    t = cfg.train
    seed_everything(t.seed)
    model = pretrainer_from_config(training_job(cfg))
    model.train()
    dataset = chip_dataset(training_job(cfg), chips, model)
    batch = t.micro_batch * t.nproc * t.grad_accum
    stream = EpochShardStream(len(dataset), 0, 1, batch, t.seed)
    seed_everything(t.seed * 1000 + 1)
    batches = batch_iterator(stream, dataset, collate_samples, 0, seed=t.seed)
    opt = torch.optim.AdamW(param_groups(model, weight_decay=t.weight_decay), lr=t.lr)
    sched = WarmupCosineSchedule(
        opt, lr=t.lr, min_lr=t.min_lr, warmup_steps=t.warmup_steps, total_steps=t.steps
    )
    params = [p for p in model.parameters() if p.requires_grad]
    losses = []
    for step in range(1, t.steps + 1):
        out = model(next(batches))
        out["loss"].backward()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        model.update_teacher(
            ema_momentum_at(
                step, start=t.ema_momentum[0], end=t.ema_momentum[1], total_steps=t.steps
            )
        )
        losses.append(float(out["loss"].detach()))
        if on_step is not None:
            on_step(step, out, model)
        if step % 50 == 0 or step == t.steps:
            print(f"pre-training step {step}/{t.steps}, loss {losses[-1]:.3f}", file=sys.stderr)
    return model.eval(), losses


def cached_pretrain(
    cfg: Any, chips: Path, work: Path, encoder: str = "teacher"
) -> tuple[torch.nn.Module, list[float]]:
    """:func:`pretrain`, or the encoders a run with the same model, train and pre-training data
    settings saved under ``work`` (held-out settings do not change the pre-training chips:
    pre-training places come first and each scene is seeded by its index). ``encoder``: the
    EMA ``teacher`` (what training exports by default) or the ``student``.
    """
    data = cfg.data.model_dump(mode="json")
    data["sample"].pop("heldout_locations")
    data["sample"].pop("downstream_chip_px")
    train = cfg.train.model_dump(mode="json")
    train.pop("export_encoder")
    key = hashlib.sha1(
        json.dumps([data, cfg.model.model_dump(mode="json"), train], sort_keys=True).encode()
    ).hexdigest()[:10]
    path = work / f"student-{key}.pt"
    saved = torch.load(path, map_location="cpu", weights_only=True) if path.exists() else {}
    if encoder not in saved:
        pre, losses = pretrain(cfg, chips)
        saved = {
            "student": pre.student.state_dict(),
            "teacher": pre.teacher_module["encoder"].state_dict(),
            "losses": torch.tensor(losses),
        }
        torch.save(saved, path)
    from skysense.models import create_model

    model = create_model(cfg.model.preset, **cfg.model.overrides)
    model.load_state_dict(saved[encoder])
    return model.eval(), saved["losses"].tolist()


def target_lines(table: dict[str, Any], target: float = 0.10) -> list[str]:
    """Issue 19's target in the bench: pre-trained beats the (stronger) twin by ``target`` at 5
    labels per class, for each probe.
    """
    out = []
    for metric, label in PROBES:
        row = table.get("5", {}).get(metric)
        g = weakest_gain(row, "pretrained") if row else None
        if g is None:
            continue
        verdict = "PASS" if g["mean"] >= target else "FAIL"
        out.append(
            f"{verdict} k=5 {label}: pre-trained - stronger twin = {g['mean']:+.3f} +- "
            f"{g['std']:.3f} (target {target:+.2f})"
        )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the bench, print the whole table and return it."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = place_overrides(args.places, args.heldout)
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    if args.objective:
        overrides.append(f"train.objective={args.objective}")
    overrides += args.overrides
    cfg = config_from_dict(apply_overrides({}, overrides), "<bench>")
    args.encoder = args.encoder or cfg.train.export_encoder
    sup_steps = cfg.train.steps if args.supervised_steps is None else args.supervised_steps
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    sample, chips = prepare_data(cfg, args.work)
    times["data"] = time.perf_counter() - t0
    stats = json.loads((chips / "stats.json").read_text())
    t0 = time.perf_counter()
    trained, losses = cached_pretrain(cfg, chips, args.work, args.encoder)
    times["pretrain"] = time.perf_counter() - t0
    encoders = {"pretrained": trained}
    if sup_steps > 0:
        from supervised_bound import train_supervised

        encoders["supervised"], _, _, times["supervised"] = train_supervised(
            cfg, chips, sample, sup_steps
        )
    encoders.update(twins(cfg))
    t0 = time.perf_counter()
    res = evaluate_table(cfg, encoders, sample, stats, not args.no_seg)
    times["eval"] = time.perf_counter() - t0
    n = res["n"]
    print(
        f"settings: {' '.join(overrides) or '(defaults)'}; encoder: {args.encoder}; "
        f"supervised bound: {sup_steps or 'skipped'} steps"
    )
    print(
        f"pre-training: {len(losses)} steps, loss {losses[0]:.3f} -> {np.mean(losses[-5:]):.3f}; "
        f"held-out: {n['classification']} classification chips from {n['locations']} places, "
        f"{n.get('segmentation', 0)} segmentation chips; {cfg.eval.draws} draws per k"
    )
    text = print_table(res, ["pretrained", "random", "random_plain", "supervised", "raw_spectra"])
    verdicts = target_lines(res["table"])
    print("\n".join(verdicts))
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    result = {
        "settings": overrides,
        "table": res["table"],
        "text": text,
        "targets": verdicts,
        "n": n,
        "seconds": times,
        "loss_first": losses[0],
        "loss_last5": float(np.mean(losses[-5:])),
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
