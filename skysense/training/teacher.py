"""EMA teacher update inside a DeepSpeed engine, consistent under every ZeRO stage.

The teacher lives in the engine's module (so it is checkpointed and resumed with the student)
but is frozen: it never reaches the optimizer. Under stages 0-2 every rank holds the full
module, and the pre-trainer's own ``update_teacher(momentum)`` runs unchanged on each rank
(identical inputs, identical result). Under stage 3 every parameter, teacher included, is
partitioned the same way across ranks (a parameter's ``ds_tensor`` is this rank's slice), so the
EMA is applied slice by slice: ``t = m * t + (1 - m) * s`` on each rank's slices, which is the
same arithmetic as on the gathered tensors, without gathering anything.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from skysense.errors import TrainingError


def teacher_pairs(pretrainer: torch.nn.Module) -> Iterator[tuple[torch.nn.Parameter, torch.nn.Parameter]]:
    """``(student_param, teacher_param)`` pairs the EMA updates, matched by name.

    Uses ``pretrainer.ema_pairs()`` when the pre-trainer defines it; otherwise pairs the
    parameters of ``pretrainer.student`` and ``pretrainer.teacher`` that have the same name.
    """
    custom = getattr(pretrainer, "ema_pairs", None)
    if callable(custom):
        yield from custom()
        return
    student = getattr(pretrainer, "student", None)
    teacher = getattr(pretrainer, "teacher", None)
    if not isinstance(student, torch.nn.Module) or not isinstance(teacher, torch.nn.Module):
        raise TrainingError(
            f"{type(pretrainer).__name__} has no 'student'/'teacher' modules nor ema_pairs(): the "
            "EMA teacher cannot be updated under ZeRO stage 3"
        )
    student_params = dict(student.named_parameters())
    for name, t_param in teacher.named_parameters():
        s_param = student_params.get(name)
        if s_param is not None:
            yield s_param, t_param


@torch.no_grad()
def update_teacher(pretrainer: torch.nn.Module, momentum: float, zero_stage: int) -> None:
    """Move the teacher towards the student: ``teacher = m * teacher + (1 - m) * student``.

    Args:
        pretrainer: the engine's module (``engine.module``).
        momentum: EMA momentum ``m`` in [0, 1].
        zero_stage: the engine's ZeRO stage; 3 updates the local partitions.
    """
    if zero_stage < 3:
        pretrainer.update_teacher(momentum)
        return
    for s_param, t_param in teacher_pairs(pretrainer):
        s_part = getattr(s_param, "ds_tensor", None)
        t_part = getattr(t_param, "ds_tensor", None)
        if s_part is None or t_part is None:
            raise TrainingError("ZeRO-3 engine holds an unpartitioned parameter; rebuild the engine")
        if s_part.shape != t_part.shape:
            raise TrainingError(
                f"student/teacher partitions differ ({tuple(s_part.shape)} vs {tuple(t_part.shape)}): "
                "the teacher must mirror the student"
            )
        t_part.mul_(momentum).add_(s_part.to(t_part.dtype), alpha=1.0 - momentum)
