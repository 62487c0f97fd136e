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

from skysense.core.errors import TrainingError


def ema_modules(pretrainer: torch.nn.Module) -> list[tuple[torch.nn.Module, torch.nn.Module]]:
    """``(student_side, teacher_side)`` module pairs whose same-named tensors the EMA links.

    SkySense pre-trainer: ``teacher.encoder`` follows ``student`` and ``teacher.heads`` follows
    ``heads``; a plain ``student``/``teacher`` pair is used otherwise.
    """
    student = getattr(pretrainer, "student", None)
    teacher = getattr(pretrainer, "teacher", None)
    if isinstance(teacher, torch.nn.ModuleDict) and "encoder" in teacher:
        pairs = [(student, teacher["encoder"])]
        if "heads" in teacher and isinstance(getattr(pretrainer, "heads", None), torch.nn.Module):
            pairs.append((pretrainer.heads, teacher["heads"]))
        return pairs
    if isinstance(student, torch.nn.Module) and isinstance(teacher, torch.nn.Module):
        return [(student, teacher)]
    raise TrainingError(
        f"{type(pretrainer).__name__} has no registered 'student'/'teacher' modules: the EMA "
        "teacher cannot be updated under ZeRO stage 3"
    )


def teacher_pairs(pretrainer: torch.nn.Module) -> Iterator[tuple[torch.nn.Parameter, torch.nn.Parameter]]:
    """``(student_param, teacher_param)`` pairs the EMA updates, matched by name."""
    for s_mod, t_mod in ema_modules(pretrainer):
        student_params = dict(s_mod.named_parameters())
        for name, t_param in t_mod.named_parameters():
            s_param = student_params.get(name)
            if s_param is None:
                raise TrainingError(f"teacher parameter {name!r} has no student counterpart")
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
        shares = t_param.data.untyped_storage().data_ptr() == t_part.untyped_storage().data_ptr()
        if t_param.data.numel() == t_param.ds_numel > 0 and not shares:  # kept whole (persistent)
            if s_param.data.numel() != s_param.ds_numel:
                raise TrainingError("student and teacher differ in ZeRO-3 persistence; rebuild the engine")
            t_param.data.mul_(momentum).add_(s_param.data.to(t_param.dtype), alpha=1.0 - momentum)
    for s_mod, t_mod in ema_modules(pretrainer):  # buffers (e.g. prototypes) are not partitioned
        student_buffers = dict(s_mod.named_buffers())
        for name, t_buf in t_mod.named_buffers():
            if name in student_buffers:
                t_buf.copy_(student_buffers[name])
