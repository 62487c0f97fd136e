"""Training-step benchmark: plain PyTorch against DeepSpeed ZeRO 0-3, and per-rank model states.

    python bench/train_step.py                      # tiny preset, micro-batch 1, 3 timed steps
    python bench/train_step.py --set sentinel_px=4 --set hr_px=128 --steps 5 --json out.json

1. One process (all cores): step time of a plain PyTorch step (forward, backward, grad clip,
   AdamW, EMA teacher) and of the DeepSpeed engine at ZeRO 0-3 (same model, batch, optimizer),
   split into forward / backward / step, with the ratio to plain PyTorch.
2. Two ranks (torchrun, gloo, cores split between ranks): step time, and the model-state bytes
   (parameters + gradients + optimizer states) each rank actually holds, measured from the
   engine's tensors (``skysense.training.telemetry.model_state_bytes``), for ZeRO 0-3.
3. DeepSpeed's model-state memory estimate for the huge preset per stage on 8 and 64 GPUs
   (parameter counts from the model built on the meta device).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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
from skysense.training.schedule import WarmupCosineSchedule, param_groups
from skysense.training.telemetry import model_state_bytes

GiB = 2**30


def config_with(sets: list[str]):
    """Embedded defaults with dotted overrides (the bench does not depend on ./params.yaml)."""
    return config_from_dict(apply_overrides({}, sets), "<bench>")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The bench's options (preset, overrides, stages, precisions, worker mode)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", default="skysense-tiny")
    p.add_argument(
        "--set", action="append", default=[], dest="overrides", help="model override k=v"
    )
    p.add_argument("--micro-batch", type=int, default=1)
    p.add_argument("--dates", type=int, default=3, help="S2/S1 dates per sample")
    p.add_argument("--steps", type=int, default=3, help="timed steps (after 1 warm-up step)")
    p.add_argument("--stages", default="0,1,2,3")
    p.add_argument("--skip-two-ranks", action="store_true")
    p.add_argument("--skip-one-process", action="store_true")
    p.add_argument(
        "--threads", type=int, default=0, help="torch threads of the one-process runs (0: default)"
    )
    p.add_argument(
        "--two-rank-precisions", default="fp32,bf16", help="precisions of the two-rank runs"
    )
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    p.add_argument(
        "--zero3-persistence-threshold",
        type=int,
        default=0,
        help="ZeRO-3 whole-parameter threshold (0: partition every parameter, as the huge "
        "preset's large layers are; params.yaml default 100000)",
    )
    p.add_argument("--json", type=Path, default=None, help="write all figures as JSON here")
    p.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def model_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` items as model overrides, the values parsed as YAML."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, value = item.split("=", 1)
        parsed = yaml.safe_load(value)
        out[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    return out


def make_pretrainer(args: argparse.Namespace) -> torch.nn.Module:
    """The student/teacher pre-trainer of the bench's preset, seeded."""
    from skysense.models import create_model
    from skysense.models.pretraining import SkySensePretrainer

    cfg = config_with([])
    torch.manual_seed(0)
    model = create_model(args.preset, **model_overrides(args.overrides))
    model.set_grad_checkpointing(False)
    return SkySensePretrainer(model, loss_weights=cfg.train.loss_weights, augment=cfg.train.augment)


def synthetic_batch(spec: Any, batch: int, dates: int, seed: int = 0) -> dict[str, Any]:
    """A normalised batch of the interface's shapes (docs/interfaces.md) for one spec."""
    g = torch.Generator().manual_seed(seed)
    s, h = spec.sentinel_px, spec.hr_px
    ones = torch.ones(batch, dtype=torch.bool)
    return {
        "ids": [f"bench-{i}" for i in range(batch)],
        "lat": torch.full((batch,), 46.5),
        "lon": torch.full((batch,), 7.5),
        "region": torch.randint(0, spec.n_regions, (batch,), generator=g),
        "hr": torch.randn(batch, spec.hr_in_chans, h, h, generator=g),
        "s2": torch.randn(batch, dates, 10, s, s, generator=g),
        "s2_doy": torch.randint(1, 366, (batch, dates), generator=g),
        "s2_valid": torch.ones(batch, dates, dtype=torch.bool),
        "s1": torch.randn(batch, dates, 2, s, s, generator=g),
        "s1_doy": torch.randint(1, 366, (batch, dates), generator=g),
        "s1_valid": torch.ones(batch, dates, dtype=torch.bool),
        "dem": torch.randn(batch, 1, s, s, generator=g),
        "has_hr": ones,
        "has_s2": ones,
        "has_s1": ones,
        "has_dem": ones,
    }


def train_cfg(stage: int, micro_batch: int, precision: str = "fp32", persistence: int = 0):
    """The embedded configuration with this ZeRO stage, micro-batch and precision."""
    return config_with(
        [
            f"train.zero_stage={stage}",
            f"train.micro_batch={micro_batch}",
            "train.steps=1000",
            f"train.precision={precision}",
            f"train.zero3_persistence_threshold={persistence}",
        ]
    )


def time_plain(args: argparse.Namespace) -> dict[str, float]:
    """Plain PyTorch step: forward, backward, clip, AdamW (torch), lr schedule, EMA teacher."""
    cfg = train_cfg(0, args.micro_batch).train
    model = make_pretrainer(args)
    opt = torch.optim.AdamW(param_groups(model, weight_decay=cfg.weight_decay), lr=cfg.lr)
    sched = WarmupCosineSchedule(
        opt, lr=cfg.lr, min_lr=cfg.min_lr, warmup_steps=5, total_steps=1000
    )
    params = [p for p in model.parameters() if p.requires_grad]
    batch = synthetic_batch(model.student.spec, args.micro_batch, args.dates)
    parts = {"forward": 0.0, "backward": 0.0, "step": 0.0}
    cpu = 0.0
    for i in range(args.steps + 1):
        torch.manual_seed(i)
        c0 = time.process_time()
        t0 = time.perf_counter()
        loss = model(batch)["loss"]
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        model.update_teacher(0.99)
        t3 = time.perf_counter()
        if i > 0:
            cpu += time.process_time() - c0
            parts["forward"] += t1 - t0
            parts["backward"] += t2 - t1
            parts["step"] += t3 - t2
    out = {k: v / args.steps for k, v in parts.items()}
    out["total"] = sum(out.values())
    out["cpu"] = cpu / args.steps
    return out


def time_engine(args: argparse.Namespace, stage: int, world_size: int) -> dict[str, Any]:
    """DeepSpeed step at one ZeRO stage; model-state bytes at their peak (after backward/step)."""
    from skysense.training.loop import to_device
    from skysense.training.teacher import update_teacher

    cfg = train_cfg(stage, args.micro_batch, args.precision, args.zero3_persistence_threshold)
    runtime = resolve_runtime(cfg.train)
    model = make_pretrainer(args)
    engine, _, _ = build_engine(model, training_job(cfg), runtime, world_size)
    batch = synthetic_batch(
        model.student.spec, args.micro_batch, args.dates, seed=int(os.environ.get("RANK", "0"))
    )
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    batch = to_device(batch, engine.device, dtype)
    parts = {"forward": 0.0, "backward": 0.0, "step": 0.0}
    peak: dict[str, int] = {"total": 0}
    cpu = 0.0
    for i in range(args.steps + 1):
        torch.manual_seed(i)
        c0 = time.process_time()
        t0 = time.perf_counter()
        loss = engine(batch)["loss"]
        t1 = time.perf_counter()
        engine.backward(loss)
        t2 = time.perf_counter()
        c_measure = time.process_time()
        after_backward = model_state_bytes(engine) if i == 1 else None
        c_measure = time.process_time() - c_measure
        t2b = time.perf_counter()
        engine.step()
        update_teacher(engine.module, 0.99, stage)
        t3 = time.perf_counter()
        if i > 0:
            parts["forward"] += t1 - t0
            parts["backward"] += t2 - t1
            parts["step"] += t3 - t2b
            cpu += time.process_time() - c0 - c_measure
        if after_backward is not None:
            after_step = model_state_bytes(engine)
            merged = {
                k: max(after_backward[k], after_step[k]) for k in ("params", "grads", "optimizer")
            }
            merged["total"] = sum(merged.values())
            peak = merged
    out: dict[str, Any] = {k: v / args.steps for k, v in parts.items()}
    out["total"] = sum(out.values())
    out["cpu"] = cpu / args.steps
    out["model_state_bytes"] = peak
    del engine
    return out


def run_worker(args: argparse.Namespace) -> None:
    """One rank of the two-rank measurements (started by torchrun)."""
    import deepspeed.comm as dist

    cfg = config_with([])
    rank, world = init_distributed(resolve_runtime(cfg.train))
    results = {}
    for stage in [int(s) for s in args.stages.split(",")]:
        res = time_engine(args, stage, world)
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, res["model_state_bytes"])
        res["per_rank_bytes"] = gathered
        results[stage] = res
    if rank == 0:
        args.worker.write_text(json.dumps(results))


def two_rank_results(args: argparse.Namespace, precision: str) -> dict[str, Any]:
    """Per ZeRO stage: step time and per-rank model-state bytes of a two-rank gloo run."""
    from skysense.training.launch import thread_env

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "two.json"
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nnodes",
            "1",
            "--nproc_per_node",
            "2",
            __file__,
            "--worker",
            str(out),
            "--stages",
            args.stages,
            "--preset",
            args.preset,
            "--precision",
            precision,
            "--zero3-persistence-threshold",
            str(args.zero3_persistence_threshold),
            "--micro-batch",
            str(args.micro_batch),
            "--steps",
            str(args.steps),
            "--dates",
            str(args.dates),
        ]
        for item in args.overrides:
            cmd += ["--set", item]
        env = thread_env(2)
        env["PYTHONPATH"] = str(ROOT)
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def huge_estimates() -> list[dict[str, Any]]:
    """DeepSpeed model-state estimates (GiB per GPU, and CPU per node) for skysense-huge."""
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    from skysense.models import create_model
    from skysense.models.pretraining import SkySensePretrainer

    with torch.device("meta"):
        pre = SkySensePretrainer(create_model("skysense-huge"))
    total = sum(p.numel() for p in pre.parameters() if p.requires_grad)
    largest = max(
        sum(p.numel() for p in m.parameters(recurse=False) if p.requires_grad)
        for m in pre.modules()
    )
    teacher = sum(p.numel() for p in pre.parameters() if not p.requires_grad)
    rows = []
    for gpus, nodes in ((8, 1), (64, 8)):
        per_node = gpus // nodes
        n = gpus
        # Stages 0 and 1 have no DeepSpeed estimator: bf16 params + bf16 grads + 12 B fp32
        # master/Adam states per parameter, the latter split across GPUs by stage 1.
        rows.append(
            {
                "gpus": gpus,
                "stage": 0,
                "offload": "none",
                "gpu_gib": 16 * total / GiB,
                "cpu_gib": None,
            }
        )
        rows.append(
            {
                "gpus": gpus,
                "stage": 1,
                "offload": "none",
                "gpu_gib": (4 * total + 12 * total / n) / GiB,
                "cpu_gib": None,
            }
        )
        for off in (False, True):
            cpu, gpu = estimate_zero2_model_states_mem_needs(
                total, per_node, nodes, cpu_offload=off
            )
            rows.append(
                {
                    "gpus": gpus,
                    "stage": 2,
                    "offload": "cpu" if off else "none",
                    "gpu_gib": gpu / GiB,
                    "cpu_gib": cpu / GiB,
                }
            )
        for off, off_p in ((False, False), (True, False), (True, True)):
            cpu, gpu, _ = estimate_zero3_model_states_mem_needs(
                total,
                largest,
                per_node,
                nodes,
                cpu_offload=off,
                cpu_offload_params=off_p,
                zero_init=True,
            )
            label = "none" if not off else ("optimizer" if not off_p else "optimizer+params")
            rows.append(
                {
                    "gpus": gpus,
                    "stage": 3,
                    "offload": label,
                    "gpu_gib": gpu / GiB,
                    "cpu_gib": cpu / GiB,
                }
            )
    return [
        {"trainable_params": total, "largest_layer_params": largest, "teacher_params": teacher}
    ] + rows


def print_one_process(args: argparse.Namespace, stages: list[int], report: dict[str, Any]) -> None:
    """Time plain PyTorch and the engine at each stage in this process; print the table."""
    plain = time_plain(args)
    report["plain"] = plain
    report["one_process"] = {s: time_engine(args, s, 1) for s in stages}
    print(
        f"\n## One process ({torch.get_num_threads()} threads), {args.preset} {args.overrides}, "
        f"micro-batch {args.micro_batch}: seconds per step (forward / backward / step)"
    )
    print(
        f"{'run':<12}{'wall s':>9}{'ratio':>7}{'cpu s':>9}{'ratio':>7}"
        f"{'fwd':>8}{'bwd':>8}{'step':>8}"
    )
    for name, r in [("pytorch", plain)] + [
        (f"zero-{s}", r) for s, r in report["one_process"].items()
    ]:
        print(
            f"{name:<12}{r['total']:>9.3f}{r['total'] / plain['total']:>7.2f}{r['cpu']:>9.3f}"
            f"{r['cpu'] / plain['cpu']:>7.2f}{r['forward']:>8.3f}{r['backward']:>8.3f}"
            f"{r['step']:>8.3f}"
        )


def main() -> None:
    """Run the bench and print its tables."""
    args = parse_args()
    if args.worker is not None:
        run_worker(args)
        return
    from skysense.training.engine import ensure_process_env

    ensure_process_env()
    if args.threads:
        torch.set_num_threads(args.threads)
    init_distributed(resolve_runtime(config_with([]).train))
    stages = [int(s) for s in args.stages.split(",")]
    report: dict[str, Any] = {
        "preset": args.preset,
        "overrides": args.overrides,
        "micro_batch": args.micro_batch,
        "threads": torch.get_num_threads(),
    }
    if not args.skip_one_process:
        print_one_process(args, stages, report)
    precisions = [] if args.skip_two_ranks else args.two_rank_precisions.split(",")
    for precision in precisions:
        two = two_rank_results(args, precision)
        report[f"two_ranks_{precision}"] = two
        base = two[str(stages[0])]["per_rank_bytes"][0]["total"] if stages[0] == 0 else None
        print(
            f"\n## Two ranks (gloo, 1 thread each), {precision}: step time and model states held "
            "per rank (MiB)"
        )
        print(
            f"{'stage':<8}{'wall s':>8}{'rank0 MiB':>11}{'rank1 MiB':>11}"
            f"{'params':>9}{'grads':>9}{'optim':>9}{'vs z0':>7}"
        )
        for s in stages:
            r = two[str(s)]
            b0, b1 = r["per_rank_bytes"]
            ratio = f"{b0['total'] / base:.2f}" if base else "-"
            print(
                f"{'zero-' + str(s):<8}{r['total']:>8.3f}"
                f"{b0['total'] / 2**20:>11.2f}{b1['total'] / 2**20:>11.2f}"
                f"{b0['params'] / 2**20:>9.2f}{b0['grads'] / 2**20:>9.2f}"
                f"{b0['optimizer'] / 2**20:>9.2f}{ratio:>7}"
            )
    est = huge_estimates()
    report["huge_estimates"] = est
    head, rows = est[0], est[1:]
    print(
        f"\n## DeepSpeed model-state estimate, skysense-huge: {head['trainable_params'] / 1e9:.3f} "
        "B "
        f"trainable params (largest layer {head['largest_layer_params'] / 1e6:.1f} M; EMA teacher "
        f"{head['teacher_params'] / 1e9:.3f} B more, frozen, not in the estimate)"
    )
    print(f"{'GPUs':>5}{'stage':>7}  {'offload':<18}{'GPU GiB/GPU':>12}{'CPU GiB/node':>14}")
    for r in rows:
        cpu = f"{r['cpu_gib']:.1f}" if r["cpu_gib"] is not None else "-"
        print(f"{r['gpus']:>5}{r['stage']:>7}  {r['offload']:<18}{r['gpu_gib']:>12.1f}{cpu:>14}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
