"""Time one SkySense pre-training step (both views, student forward+backward, teacher forward,
AdamW step, EMA update) on a synthetic batch; prints seconds per step (min and median).

    .venv/bin/python bench/model_step.py --preset skysense-tiny --batch 8 --threads 2
"""

from __future__ import annotations

import os

# OpenMP threads that busy-wait between parallel regions burn the CPU other processes need and,
# on a loaded machine, stall each op until a descheduled thread returns (measured here: the
# HR branch 4-5x slower in CPU seconds). Must be set before torch loads libgomp; an explicit
# OMP_WAIT_POLICY=ACTIVE in the environment still wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import statistics
import time

import torch

from skysense.models import create_model
from skysense.models.pretraining import SkySensePretrainer


def synthetic_batch(b: int, s: int, t2: int, t1: int, n_regions: int) -> dict:
    """A full multi-modal batch in the layout of docs/interfaces.md."""
    g = torch.Generator().manual_seed(0)
    return {
        "hr": torch.randn(b, 4, 32 * s, 32 * s, generator=g),
        "s2": torch.randn(b, t2, 10, s, s, generator=g),
        "s2_doy": torch.randint(1, 366, (b, t2), generator=g),
        "s2_valid": torch.rand(b, t2, generator=g) > 0.2,
        "s1": torch.randn(b, t1, 2, s, s, generator=g),
        "s1_doy": torch.randint(1, 366, (b, t1), generator=g),
        "s1_valid": torch.ones(b, t1, dtype=torch.bool),
        "dem": torch.randn(b, 1, s, s, generator=g),
        "region": torch.randint(0, n_regions, (b,), generator=g),
    }


def main() -> None:
    """Run the bench and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", default="skysense-tiny")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--sentinel-px", type=int, default=None, help="default: the preset's")
    ap.add_argument("--s2-dates", type=int, default=8)
    ap.add_argument("--s1-dates", type=int, default=6)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    overrides = {"sentinel_px": args.sentinel_px} if args.sentinel_px else {}
    model = create_model(args.preset, **overrides)
    pre = SkySensePretrainer(model)
    s = model.spec.sentinel_px
    batch = synthetic_batch(args.batch, s, args.s2_dates, args.s1_dates, model.spec.n_regions)
    opt = torch.optim.AdamW(pre.trainable_parameters(), lr=1e-4)
    wall, cpu = [], []
    for step in range(args.steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        out = pre(batch)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        pre.update_teacher(0.996)
        if step:  # the first step warms up allocators
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    n = sum(p.numel() for p in pre.trainable_parameters())
    print(
        f"preset={args.preset} sentinel_px={s} hr_px={32 * s} batch={args.batch} "
        f"threads={args.threads} "
        f"trainable_params={n:,} OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}"
    )
    print(
        f"step wall s: min {min(wall):.3f} median {statistics.median(wall):.3f}; "
        f"cpu s: min {min(cpu):.3f} median {statistics.median(cpu):.3f}; load average "
        f"{os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
