"""DeepSpeed engine: runtime resolution (device, backend), the DeepSpeed config, engine build.

Everything comes from ``params.yaml: train``: ZeRO stage 0-3, fp32/bf16/fp16, gradient
accumulation and clipping, optimizer-state offload to CPU, AdamW (``torch_adam`` or DeepSpeed's
fused CPU Adam) with warm-up + cosine lr and optional layer-wise decay. ``device``/``backend``
``auto`` resolve to cuda+nccl when a GPU is visible, else cpu+gloo: nothing else changes.

ZeRO-3 gathers each module's parameters when the module runs, with a collective: every rank
must run the same modules in the same order. Stages 0-2 tolerate a branch skipped on one rank
(its gradients are simply absent); stage 3 stalls until the collective timeout.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

from skysense.core.errors import TrainingError
from skysense.training.job import TrainingJob
from skysense.training.schedule import WarmupCosineSchedule, param_groups
from skysense.training.settings import TrainConfig

CHECKPOINTED_PRESETS = ("skysense-base", "skysense-huge")
NEVER = 10**9


@dataclass(frozen=True)
class Runtime:
    """Where and how a run computes: ``device`` (cpu|cuda), ``backend`` (gloo|nccl), precision."""

    device: str
    backend: str
    precision: str


def resolve_runtime(train: TrainConfig) -> Runtime:
    """Resolve ``auto`` device/backend: cuda+nccl when ``torch.cuda.is_available()``, else cpu+gloo.

    Raises:
        TrainingError: ``train.device=cuda`` (or ``backend=nccl``) on a machine without a GPU.
    """
    has_cuda = torch.cuda.is_available()
    device = train.device if train.device != "auto" else ("cuda" if has_cuda else "cpu")
    if device == "cuda" and not has_cuda:
        raise TrainingError(
            "train.device=cuda but no CUDA GPU is visible; set train.device=auto or cpu"
        )
    backend = train.backend if train.backend != "auto" else ("nccl" if device == "cuda" else "gloo")
    if backend == "nccl" and device != "cuda":
        raise TrainingError("train.backend=nccl needs CUDA GPUs; set train.backend=auto or gloo")
    if train.precision == "fp16" and device == "cpu":
        raise TrainingError("train.precision=fp16 is not supported on CPU; use fp32 or bf16")
    return Runtime(device=device, backend=backend, precision=train.precision)


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_process_env() -> None:
    """Set RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT for a single process if unset.

    Launchers (torchrun, ``deepspeed``) set them; a plain process needs them before
    ``deepspeed.initialize`` or DeepSpeed falls back to MPI discovery.
    """
    owner = os.environ.get(SELF_SET_ENV)
    inherited = owner is not None and owner != str(os.getpid())
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and not inherited:
        os.environ.setdefault("LOCAL_RANK", os.environ["RANK"])
        return
    if inherited:  # a parent's own single-process variables: its port is taken, pick anew
        for key in RANK_ENV_VARS:
            os.environ.pop(key, None)
    os.environ.update(
        RANK="0",
        WORLD_SIZE="1",
        LOCAL_RANK="0",
        MASTER_ADDR=os.environ.get("MASTER_ADDR", "127.0.0.1"),
        MASTER_PORT=os.environ.get("MASTER_PORT", str(free_port())),
    )
    # Marks the variables as this process's own: a child process (a later multi-process run
    # started from here) must not take them for a launcher's and reuse this process's port.
    os.environ[SELF_SET_ENV] = str(os.getpid())


#: Set when :func:`ensure_process_env` (not a launcher) set the rank variables.
SELF_SET_ENV = "SKYSENSE_SELF_RANK_ENV"
RANK_ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", SELF_SET_ENV)


def child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) without rank variables this process set for itself."""
    env = dict(os.environ if base is None else base)
    if env.get(SELF_SET_ENV):
        for key in RANK_ENV_VARS:
            env.pop(key, None)
    return env


def init_distributed(runtime: Runtime, timeout_s: float = 600.0) -> tuple[int, int]:
    """Initialise torch.distributed through DeepSpeed; returns ``(rank, world_size)``."""
    import deepspeed

    ensure_process_env()
    if runtime.device == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    deepspeed.init_distributed(dist_backend=runtime.backend, timeout=timedelta(seconds=timeout_s))
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])


def uses_activation_checkpointing(job: TrainingJob) -> bool:
    """``train.activation_checkpointing``, defaulting to on for the base and huge presets."""
    if job.train.activation_checkpointing is not None:
        return job.train.activation_checkpointing
    return job.model.preset in CHECKPOINTED_PRESETS


def deepspeed_config(train: TrainConfig, runtime: Runtime, world_size: int) -> dict[str, Any]:
    """The DeepSpeed config dict for a run of ``world_size`` data-parallel ranks.

    Optimizer offload needs DeepSpeed's CPU Adam (``torch_adam`` is then ignored); it compiles
    once (about 50 s) and is cached under ``TORCH_EXTENSIONS_DIR``.
    """
    zero: dict[str, Any] = {"stage": train.zero_stage}
    if train.zero_stage > 0:
        zero.update(
            {
                "overlap_comm": runtime.device == "cuda",
                "contiguous_gradients": True,
                "reduce_bucket_size": 5e7,
            }
        )
    if train.zero_stage in (1, 2):
        zero["allgather_bucket_size"] = 5e7
    if train.zero_stage == 3:
        zero.update(
            {
                "stage3_prefetch_bucket_size": 5e7,
                "stage3_param_persistence_threshold": train.zero3_persistence_threshold,
            }
        )
    torch_adam = train.torch_adam
    if train.offload_optimizer:
        if train.zero_stage == 0:
            raise TrainingError(
                "train.offload_optimizer needs ZeRO stage 1, 2 or 3; set train.zero_stage"
            )
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": runtime.device == "cuda"}
        torch_adam = False
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": train.micro_batch,
        "gradient_accumulation_steps": train.grad_accum,
        "train_batch_size": train.micro_batch * train.grad_accum * world_size,
        "gradient_clipping": train.grad_clip,
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": train.lr,
                "betas": [0.9, 0.999],
                "eps": 1e-8,
                "weight_decay": train.weight_decay,
                "torch_adam": torch_adam,
            },
        },
        "zero_optimization": zero,
        "bf16": {"enabled": runtime.precision == "bf16"},
        "fp16": {"enabled": runtime.precision == "fp16", "initial_scale_power": 16},
        "steps_per_print": NEVER,
        "wall_clock_breakdown": False,
        "zero_allow_untested_optimizer": True,
    }
    return config


def build_engine(
    pretrainer: torch.nn.Module, job: TrainingJob, runtime: Runtime, world_size: int
) -> tuple[Any, WarmupCosineSchedule, dict[str, Any]]:
    """Wrap the pre-trainer in a DeepSpeed engine with AdamW and the warm-up + cosine schedule.

    Only trainable parameters (the student and heads, not the EMA teacher) reach the optimizer.

    Returns:
        ``(engine, lr_schedule, ds_config)``.
    """
    import deepspeed

    train = job.train
    ds_config = deepspeed_config(train, runtime, world_size)
    groups = param_groups(
        pretrainer, weight_decay=train.weight_decay, layer_decay=train.layer_decay
    )

    def make_schedule(optimizer: torch.optim.Optimizer) -> WarmupCosineSchedule:
        return WarmupCosineSchedule(
            optimizer,
            lr=train.lr,
            min_lr=train.min_lr,
            warmup_steps=train.warmup_steps,
            total_steps=train.steps,
        )

    if runtime.device == "cuda":
        pretrainer = pretrainer.to(f"cuda:{os.environ.get('LOCAL_RANK', '0')}")
    try:
        engine, _, _, schedule = deepspeed.initialize(
            model=pretrainer, model_parameters=groups, config=ds_config, lr_scheduler=make_schedule
        )
    except (RuntimeError, ValueError, AssertionError) as exc:
        raise TrainingError(
            f"DeepSpeed could not build the engine ({type(exc).__name__}: {exc}); check the "
            "train section of params.yaml (zero_stage, precision, offload_optimizer)"
        ) from exc
    return engine, schedule, ds_config
