"""Resource measurements of a run: peak memory, and model-state bytes held by one rank.

Model states are what ZeRO partitions: parameters (module weights and fp32 master copies),
gradients (``.grad`` tensors and gradient buckets/partitions) and optimizer states (Adam moments).
They are measured from the tensors the engine actually holds on this rank, each storage counted
once, not estimated from parameter counts.
"""

from __future__ import annotations

import resource
import sys
from typing import Any

import torch

MAX_DEPTH = 3


def peak_memory_bytes(device: str) -> int:
    """Peak memory of this process: CUDA max allocated on GPU, peak RSS on CPU (bytes)."""
    if device == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


class _StorageCounter:
    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.bytes: dict[str, int] = {"params": 0, "grads": 0, "optimizer": 0}

    def add(self, tensor: torch.Tensor | None, kind: str) -> None:
        if tensor is None or not isinstance(tensor, torch.Tensor) or tensor.device.type == "meta":
            return
        storage = tensor.untyped_storage()
        if storage.nbytes() == 0:
            return
        key = storage.data_ptr()
        if key in self.seen:
            return
        self.seen.add(key)
        self.bytes[kind] += int(storage.nbytes())

    def walk(self, obj: Any, kind: str, depth: int = 0) -> None:
        if isinstance(obj, torch.Tensor):
            self.add(getattr(obj, "ds_tensor", None), kind)
            self.add(obj, kind)
            self.add(obj.grad, "grads")
            return
        if depth >= MAX_DEPTH or isinstance(obj, torch.nn.Module):
            return
        if isinstance(obj, dict):
            for key, value in obj.items():
                self.walk(value, _kind_of(key, kind) if isinstance(key, str) else kind, depth + 1)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                self.walk(value, kind, depth + 1)


def _kind_of(name: str, default: str) -> str:
    return "grads" if "grad" in name.lower() else default


def model_state_bytes(engine: Any) -> dict[str, int]:
    """Bytes of parameters, gradients and optimizer states this rank holds now.

    Walks the module's parameters (their ZeRO-3 partition when partitioned), their ``.grad``,
    the ZeRO optimizer's flat groups, partitions and buckets, and the base optimizer's state.
    Call it after ``backward`` (gradients live) and after ``step`` (optimizer states live)
    and take the larger total: stage 0 frees its gradients at the step.

    Returns:
        ``{"params": B, "grads": B, "optimizer": B, "total": B}``.
    """
    counter = _StorageCounter()
    for param in engine.module.parameters():
        counter.walk(param, "params")
    base = getattr(engine, "basic_optimizer", None)
    if base is not None:
        for state in base.state.values():
            for value in state.values():
                if isinstance(value, torch.Tensor) and value.numel() > 1:
                    counter.add(value, "optimizer")
    zero_opt = getattr(engine, "optimizer", None)
    if zero_opt is not None and zero_opt is not base:
        for name, value in vars(zero_opt).items():
            if not isinstance(value, torch.optim.Optimizer):
                counter.walk(value, _kind_of(name, "params"))
    out = dict(counter.bytes)
    out["total"] = sum(out.values())
    return out
