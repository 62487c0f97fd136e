"""Reading DeepSpeed checkpoint files without running code from them (``weights_only=True``).

A ``.pt`` file is a pickle: loaded with ``weights_only=False`` it can run any code. Every
``torch.load`` of this platform uses ``weights_only=True``, which admits tensors, containers and
plain values, plus the few DeepSpeed classes its checkpoints hold (the loss scaler, the ZeRO stage
enum, tensor-fragment addresses): :data:`DEEPSPEED_SAFE_GLOBALS`, admitted by name and rebuilt
from their state without calling their code. DeepSpeed's own loaders (``engine.load_checkpoint``,
``zero_to_fp32``) still unpickle with ``weights_only=False``, so every file of a checkpoint tag
is checked with :func:`verify_checkpoint` before they are handed one: a file holding any other
object is refused with :class:`UnsafeCheckpointError`, naming it.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from skysense.core.errors import TrainingError


class UnsafeCheckpointError(TrainingError):
    """A checkpoint file holds pickled objects other than tensors and plain values."""


def deepspeed_safe_globals() -> list[Any]:
    """The DeepSpeed classes its checkpoint files hold (imported lazily: DeepSpeed is slow)."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]


def safe_load(path: str | Path, map_location: str = "cpu", mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` with DeepSpeed's checkpoint classes admitted.

    Raises:
        UnsafeCheckpointError: the file holds another pickled object (the message names it).
        TrainingError: the file is not a readable torch checkpoint.
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals(deepspeed_safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file; all named
        if isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in str(exc):
            found = _unsupported_global(str(exc))
            raise UnsafeCheckpointError(
                f"{path}: refused to load: it holds a pickled object that is not a tensor or a "
                f"plain value{f' ({found})' if found else ''}, which could run code when "
                "unpickled. Use checkpoints written by `skysense train` only; if this one is "
                "yours, write it again from a clean run"
            ) from None
        raise TrainingError(
            f"{path}: not a readable torch checkpoint ({type(exc).__name__}); the file is "
            "truncated or not a checkpoint; delete this tag and resume from an earlier one"
        ) from None


def _unsupported_global(message: str) -> str:
    """The ``module.name`` torch's weights-only unpickler named in ``message``, if any."""
    match = re.search(r"(?:unsupported|Unsupported global:) GLOBAL ([\w.]+)", message)
    return match.group(1) if match else ""


def verify_checkpoint(tag_dir: str | Path) -> list[Path]:
    """Check that every ``.pt`` file of checkpoint folder ``tag_dir`` loads with
    ``weights_only=True`` (memory-mapped: the pickles are parsed, tensor data is not read).

    Returns:
        The files checked.

    Raises:
        UnsafeCheckpointError: a file holds another pickled object.
    """
    files = sorted(Path(tag_dir).glob("*.pt"))
    for path in files:
        safe_load(path, mmap=True)
    return files
