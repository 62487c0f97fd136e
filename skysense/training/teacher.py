"""EMA teacher update inside a DeepSpeed engine, consistent under every ZeRO stage.

The teacher lives in the engine's module (so it is checkpointed and resumed with the student)
but is frozen: it never reaches the optimizer. Under stages 0-2 every rank holds the full
module, and the pre-trainer's own ``update_teacher(momentum)`` runs unchanged on each rank
(identical inputs, identical result). Under stage 3 every parameter, teacher included, is
partitioned the same way across ranks (a parameter's ``ds_tensor`` is this rank's slice), so the
rule of :mod:`skysense.models.ema` is applied slice by slice, which is the same arithmetic as on
the gathered tensors, without gathering anything.
"""

from __future__ import annotations

import torch

from skysense.core.errors import TrainingError
from skysense.models.ema import copy_buffers, ema_, ema_modules, ema_pairs


@torch.no_grad()
def update_teacher(pretrainer: torch.nn.Module, momentum: float, zero_stage: int) -> None:
    """Move the teacher towards the student: ``teacher = m * teacher + (1 - m) * student``.

    Args:
        pretrainer: the engine's module (``engine.module``).
        momentum: EMA momentum ``m`` in [0, 1].
        zero_stage: the engine's ZeRO stage; 3 updates the local partitions.
    """
    if zero_stage < 3:
        update = getattr(pretrainer, "update_teacher", None)
        if not callable(update):
            raise TrainingError(
                f"{type(pretrainer).__name__} has no update_teacher(momentum); train a "
                "SkySensePretrainer (or a module with its contract)"
            )
        update(momentum)
        return
    pairs = ema_modules(pretrainer)
    for s_param, t_param in ema_pairs(pairs):
        s_part = getattr(s_param, "ds_tensor", None)
        t_part = getattr(t_param, "ds_tensor", None)
        if s_part is None or t_part is None:
            raise TrainingError(
                "ZeRO-3 engine holds an unpartitioned parameter; rebuild the engine"
            )
        if s_part.shape != t_part.shape:
            raise TrainingError(
                f"student/teacher partitions differ ({tuple(s_part.shape)} vs "
                f"{tuple(t_part.shape)}): "
                "the teacher must mirror the student"
            )
        ema_(t_part, s_part, momentum)
        shares = t_param.data.untyped_storage().data_ptr() == t_part.untyped_storage().data_ptr()
        # ds_numel: the full size DeepSpeed ZeRO-3 records on each partitioned parameter
        whole = t_param.data.numel() == t_param.ds_numel > 0  # type: ignore[attr-defined]
        if whole and not shares:  # kept whole (persistent)
            if s_param.data.numel() != s_param.ds_numel:  # type: ignore[attr-defined]
                raise TrainingError(
                    "student and teacher differ in ZeRO-3 persistence; rebuild the engine"
                )
            ema_(t_param.data, s_param.data, momentum)
    copy_buffers(pairs)  # buffers (e.g. prototypes) are not partitioned
