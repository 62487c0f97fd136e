r"""GPU path check: presets at the paper's input sizes under DeepSpeed ZeRO-2/3, bf16 and
activation checkpointing on CUDA/nccl; one row per run (``bench/gpu_check.sh`` drives it).

    torchrun --standalone --nproc_per_node N bench/gpu_check.py --preset skysense-huge \\
        --zero 3 --precision bf16 --steps 3 --out row.json            # on GPUs
    torchrun --standalone --nproc_per_node 2 bench/gpu_check.py --cpu --preset skysense-tiny \\
        --zero 2 --precision fp32 --steps 2 --out row.json             # the same path on CPU

Each rank builds the pre-trainer of ``--objective`` (default ``paper``) around the preset
(``--sentinel-px``, HR 32x; the paper's 64 px / 2048 px by default on GPU), wraps it in the
DeepSpeed engine the platform trains with (``skysense.training.engine.build_engine``), and runs a
warm-up step and ``--steps`` timed steps on a synthetic normalised batch of the interface's
shapes. Figures, per run: steps completed, loss finite, mean step time, input tokens per second
(HR patches + S2/S1 patches of every date, all ranks), model FLOP utilisation (FLOPs counted by
``torch.utils.flop_counter`` on one step of rank 0, recomputation by activation checkpointing
included, so it is a hardware utilisation; against ``--peak-tflops`` per GPU, guessed from the
device name), peak memory per GPU (``torch.cuda.max_memory_allocated``; CPU: max RSS). Then a
checkpoint / resume / export round trip: save with ``skysense.training.checkpoints``, one more
step, a fresh engine loads the checkpoint and repeats that step (the two losses must agree),
and rank 0 exports the teacher (``export_checkpoint``) and embeds a batch from the export.
An out-of-memory error is a result (``"oom": true``), not a crash.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skysense.config import apply_overrides, config_from_dict, training_job
from skysense.training.engine import build_engine, init_distributed, resolve_runtime

PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", default="skysense-huge")
    p.add_argument("--sentinel-px", type=int, default=None, help="default: 64 on GPU (paper)")
    p.add_argument("--dates", type=int, default=4, help="S2/S1 dates per sample")
    p.add_argument("--zero", type=int, default=2, choices=(0, 1, 2, 3))
    p.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    p.add_argument("--micro-batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--objective", default="paper", choices=("paper", "legacy"))
    p.add_argument("--no-checkpointing", action="store_true", help="no activation checkpointing")
    p.add_argument("--no-roundtrip", action="store_true")
    p.add_argument("--cpu", action="store_true", help="CPU + gloo (the check of the script)")
    p.add_argument("--peak-tflops", type=float, default=None)
    p.add_argument("--set", action="append", default=[], dest="overrides")
    p.add_argument("--out", type=Path, required=True, help="JSON row written by rank 0")
    return p.parse_args(argv)


def config(args: argparse.Namespace) -> Any:
    """The configuration of one run: preset, ZeRO stage, precision, device and backend."""
    sets = [
        f"model.preset={args.preset}",
        f"train.zero_stage={args.zero}",
        f"train.precision={args.precision}",
        f"train.micro_batch={args.micro_batch}",
        f"train.objective={args.objective}",
        f"train.activation_checkpointing={'false' if args.no_checkpointing else 'true'}",
        "train.steps=1000",
        "train.warmup_steps=1",
        f"train.device={'cpu' if args.cpu else 'cuda'}",
        f"train.backend={'gloo' if args.cpu else 'nccl'}",
    ]
    if args.sentinel_px or not args.cpu:
        sets.append(f"model.overrides.sentinel_px={args.sentinel_px or 64}")
    return config_from_dict(apply_overrides({}, sets + list(args.overrides)), "<gpu-check>")


def synthetic_batch(spec: Any, batch: int, dates: int, seed: int) -> dict[str, Any]:
    """A normalised batch of the interface's shapes (docs/interfaces.md)."""
    g = torch.Generator().manual_seed(seed)
    s, h = spec.sentinel_px, spec.hr_px
    ones = torch.ones(batch, dtype=torch.bool)
    out = {
        "region": torch.randint(0, spec.n_regions, (batch,), generator=g),
        "hr": torch.randn(batch, spec.hr_in_chans, h, h, generator=g),
        "s2": torch.randn(batch, dates, 10, s, s, generator=g),
        "s2_doy": torch.randint(1, 366, (batch, dates), generator=g),
        "s2_valid": torch.ones(batch, dates, dtype=torch.bool),
        "s1": torch.randn(batch, dates, 2, s, s, generator=g),
        "s1_doy": torch.randint(1, 366, (batch, dates), generator=g),
        "s1_valid": torch.ones(batch, dates, dtype=torch.bool),
        "has_hr": ones,
        "has_s2": ones,
        "has_s1": ones,
    }
    if spec.dem:
        out["dem"] = torch.randn(batch, 1, s, s, generator=g)
        out["has_dem"] = ones
    return out


def input_tokens(spec: Any, batch: int, dates: int) -> int:
    """Patch tokens entering the backbones per micro-batch: HR + S2 and S1 of every date."""
    hr = (spec.hr_px // spec.patch_size) ** 2
    sentinel = (spec.sentinel_px // spec.patch_size) ** 2
    return batch * (hr + 2 * dates * sentinel)


def peak_memory(device: torch.device) -> float:
    """Peak memory of this rank in GiB (CUDA allocator peak; CPU: max resident set)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def make_engine(cfg: Any, runtime: Any, world: int) -> tuple[Any, Any]:
    """A fresh pre-trainer (seed 0) and its DeepSpeed engine: ``(engine, pretrainer)``."""
    from skysense.training.loop import pretrainer_from_config

    torch.manual_seed(0)
    pre = pretrainer_from_config(training_job(cfg))
    engine, _, _ = build_engine(pre, training_job(cfg), runtime, world)
    return engine, pre


def one_step(engine: Any, batch: dict[str, Any], zero: int, seed: int) -> float:
    """Forward, backward, optimizer step and EMA teacher update; the loss."""
    from skysense.training.teacher import update_teacher

    torch.manual_seed(seed)
    loss = engine(batch)["loss"]
    engine.backward(loss)
    engine.step()
    update_teacher(engine.module, 0.996, zero)
    return float(loss.detach().float())


def sync(device: torch.device) -> None:
    """Wait for the device (CUDA) so that wall times cover the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One run on this rank: the figures row (complete on rank 0)."""
    import deepspeed.comm as dist

    from skysense.training.loop import to_device

    cfg = config(args)
    runtime = resolve_runtime(cfg.train)
    rank, world = init_distributed(runtime)
    engine, pre = make_engine(cfg, runtime, world)
    spec = pre.student.spec
    device = engine.device
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    batch = to_device(synthetic_batch(spec, args.micro_batch, args.dates, rank), device, dtype)
    row: dict[str, Any] = {
        "preset": args.preset,
        "sentinel_px": spec.sentinel_px,
        "hr_px": spec.hr_px,
        "zero": args.zero,
        "precision": args.precision,
        "activation_checkpointing": not args.no_checkpointing,
        "objective": args.objective,
        "world_size": world,
        "micro_batch": args.micro_batch,
        "dates": args.dates,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    }
    losses = [one_step(engine, batch, args.zero, 0)]  # warm-up
    flops = None
    times = []
    for i in range(args.steps):
        sync(device)
        t0 = time.perf_counter()
        if i == 0 and rank == 0:
            from torch.utils.flop_counter import FlopCounterMode

            with FlopCounterMode(display=False) as counter:
                losses.append(one_step(engine, batch, args.zero, i + 1))
            flops = counter.get_total_flops()
        else:
            losses.append(one_step(engine, batch, args.zero, i + 1))
        sync(device)
        times.append(time.perf_counter() - t0)
    step_s = sum(times[1:]) / max(1, len(times) - 1) if len(times) > 1 else times[0]
    tokens = input_tokens(spec, args.micro_batch, args.dates) * world
    row.update(
        steps_completed=len(losses),
        losses=losses,
        loss_finite=all(math.isfinite(v) for v in losses),
        step_s=step_s,
        tokens_per_s=tokens / step_s,
    )
    name = row["device"]
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    if flops is not None:
        row["flops_per_step_rank0"] = flops
        row["mfu"] = flops / step_s / (peak * 1e12) if peak else None
        row["peak_tflops"] = peak
    mem = [None] * world
    dist.all_gather_object(mem, peak_memory(device))
    row["peak_memory_gib_per_rank"] = mem
    if not args.no_roundtrip:
        row["roundtrip"] = roundtrip(args, cfg, runtime, world, engine, pre, batch)
    return row


def roundtrip(args, cfg, runtime, world, engine, pre, batch) -> dict[str, Any]:
    """Checkpoint, one more step; a fresh engine resumes and repeats it; rank 0 exports."""
    import deepspeed.comm as dist

    from skysense.models.export_format import load_exported
    from skysense.training.checkpoints import load_checkpoint, save_checkpoint
    from skysense.training.export import export_checkpoint

    base = Path(os.environ.get("GPU_CHECK_TMP", tempfile.gettempdir())) / "gpu-check-ckpt"
    folder = base / f"{args.preset}-z{args.zero}-{args.precision}"
    t0 = time.perf_counter()
    tag_dir = save_checkpoint(engine, folder, 100, {"check": True}, keep=1)
    save_s = time.perf_counter() - t0
    after = one_step(engine, batch, args.zero, 999)
    del engine
    engine2, pre2 = make_engine(cfg, runtime, world)
    t0 = time.perf_counter()
    state = load_checkpoint(engine2, folder)
    load_s = time.perf_counter() - t0
    resumed = one_step(engine2, batch, args.zero, 999)
    tol = 5e-2 if args.precision == "bf16" else 1e-4
    out: dict[str, Any] = {
        "save_s": save_s,
        "load_s": load_s,
        "resumed_step": state and state.get("step"),
        "loss_after_save": after,
        "loss_after_resume": resumed,
        "resume_matches": abs(after - resumed) <= tol * max(1.0, abs(after)),
    }
    dist.barrier()
    if dist.get_rank() == 0:
        export_dir = folder / "export"
        export_checkpoint(
            tag_dir,
            export_dir,
            pretrainer=pre2,
            preset=args.preset,
            overrides=dict(cfg.model.overrides),
            chips_dir=None,
            step=100,
        )
        model, _ = load_exported(export_dir, device=str(engine2.device))
        spec = model.spec
        small = synthetic_batch(spec, 1, 2, 0)
        small = {k: v.to(engine2.device) if hasattr(v, "to") else v for k, v in small.items()}
        with torch.inference_mode():
            emb = model.embed(small)
        out["export_embedding_finite"] = bool(torch.isfinite(emb).all())
        out["export_embedding_shape"] = list(emb.shape)
    dist.barrier()
    return out


def main(argv: list[str] | None = None) -> None:
    """Run and write the row (an out-of-memory error is a row too)."""
    args = parse_args(argv)
    try:
        row = run(args)
    except torch.cuda.OutOfMemoryError as exc:
        row = {"preset": args.preset, "zero": args.zero, "oom": True, "error": str(exc)[:400]}
    if int(os.environ.get("RANK", "0")) == 0:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(row, indent=2, default=str))
        print(json.dumps(row, default=str))


if __name__ == "__main__":
    main()
