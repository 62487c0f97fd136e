"""Fine-tuning figures: mIoU of the fine-tuned task model against the frozen-encoder probe and the
same fine-tuning from a random-init encoder, on held-out places, and seconds per step.

    python bench/finetune.py --size small                     # a few minutes on 2 cores
    python bench/finetune.py                                  # the make-run sample (longer)
    python bench/finetune.py --pretrain-steps 40 --set finetune.steps=60 --json out.json

Runs the platform's own commands: ``skysense data sample`` -> ``data chip`` -> ``data stats``
-> ``skysense train`` (DeepSpeed, ``--pretrain-steps`` steps, one process) -> the fine-tuning
runner (:func:`skysense.finetuning.runner.run_finetune`, the code behind ``skysense finetune``:
DeepSpeed fine-tunes of the pre-trained and of a random-init encoder, and the frozen probe).
The sample, chips and pre-trained export are cached under ``--work`` per size and steps.
``--size small`` is 2 pre-training places + 1 held-out place of 32 px (16 segmentation chips,
split every fifth chip); the default size is the ``make run`` sample (256 segmentation chips of
4 held-out places; the fine-tuning holds the last place out).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from skysense.config import finetune_job, load_config
from skysense.finetuning.runner import run_finetune

SMALL = [
    "data.sample.locations=2",
    "data.sample.heldout_locations=1",
    "data.sample.size_px=32",
    "data.sample.s2_dates=4",
    "data.sample.s1_dates=3",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The bench's options (size, steps, sets)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", choices=("small", "default"), default="default")
    p.add_argument("--pretrain-steps", type=int, default=40)
    p.add_argument("--set", action="append", default=[], dest="overrides", help="dotted k=v")
    p.add_argument("--nproc", type=int, default=1, help="fine-tuning processes")
    p.add_argument("--work", type=Path, default=Path("/tmp/skysense-bench-finetune"))
    p.add_argument("--json", type=Path, default=None, help="write the figures as JSON here")
    return p.parse_args(argv)


def skysense(*args: str) -> float:
    """Run a ``skysense`` command of this interpreter's environment; its wall seconds."""
    t0 = time.perf_counter()
    exe = str(Path(sys.executable).with_name("skysense"))
    proc = subprocess.run([exe, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"skysense {' '.join(args[:3])} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def prepare(work: Path, data_sets: list[str], pretrain_steps: int) -> tuple[Path, Path]:
    """Sample, chips, stats and a pre-trained export (cached); ``(downstream, export)``."""
    sets = [a for s in data_sets for a in ("--set", s)]
    sample, chips = work / "sample", work / "chips"
    if not (sample / "catalog.yaml").is_file():
        print(f"sample: {skysense('data', 'sample', '--out', str(sample), *sets):.1f} s")
    if not (chips / "stats.json").is_file():
        seconds = skysense(
            "data", "chip", "--catalog", str(sample / "catalog.yaml"), "--out", str(chips), *sets
        )
        seconds += skysense("data", "stats", "--chips", str(chips))
        print(f"chips: {seconds:.1f} s")
    export = work / f"export-{pretrain_steps}"
    if not (export / "model.safetensors").is_file():
        seconds = skysense(
            "train", "--chips", str(chips), "--out", str(work / f"ck-{pretrain_steps}"),
            "--export", str(export), "--nproc", "1", "--fresh", "--json",
            "--set", f"train.steps={pretrain_steps}", "--set", "train.nproc=1",
            "--set", "registry.tracking_uri=sqlite:///" + str(work / "mlflow.db"), *sets,
        )  # fmt: skip
        print(f"pre-training ({pretrain_steps} steps): {seconds:.1f} s")
    return sample / "downstream", export


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the bench, print its table and return the figures."""
    args = parse_args(argv)
    data_sets = SMALL if args.size == "small" else []
    work = args.work / args.size
    work.mkdir(parents=True, exist_ok=True)
    downstream, export = prepare(work, data_sets, args.pretrain_steps)
    cfg = load_config(None, [*data_sets, *args.overrides])
    job = finetune_job(cfg, export, downstream)
    t0 = time.perf_counter()
    report = run_finetune(
        job, work / f"finetune-{args.pretrain_steps}", nproc=args.nproc, mode="fresh"
    )
    wall = time.perf_counter() - t0
    m, s = report.metrics, report.summary
    head = s["headline"]
    figures = {
        "size": args.size,
        "pretrain_steps": args.pretrain_steps,
        "finetune_steps": s["steps"],
        "n_train": s["n_train"],
        "n_heldout": s["n_heldout"],
        "heldout_locations": s["heldout_locations"],
        head: m[head],
        f"{head}_frozen": m.get(f"{head}_frozen"),
        f"{head}_random": m.get(f"{head}_random"),
        "pixel_acc": m.get("pixel_acc"),
        "seconds_per_step": s["seconds_per_step"],
        "finetune_wall_s": round(wall, 1),
    }
    print(
        f"{args.size} sample, {s['n_train']} chips fine-tuned / {s['n_heldout']} held out "
        f"({', '.join(s['heldout_locations']) or 'every 5th chip'}); encoder pre-trained "
        f"{args.pretrain_steps} steps, fine-tuned {s['steps']} steps"
    )
    for label, key in (
        ("fine-tuned (pre-trained encoder)", head),
        ("frozen-encoder linear probe", f"{head}_frozen"),
        ("fine-tuned from random init", f"{head}_random"),
    ):
        value = m.get(key)
        print(f"  {label:34s} {head} {'-' if value is None else f'{value:.3f}'}")
    sps = s["seconds_per_step"]
    print(
        "  seconds per step: "
        + ", ".join(f"{k} {v:.2f}" for k, v in sps.items() if v is not None)
        + f"; whole fine-tuning report {wall:.1f} s"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
