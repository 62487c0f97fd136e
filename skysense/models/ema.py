"""The EMA teacher: one update rule, ``teacher = m * teacher + (1 - m) * student``.

The teacher mirrors the student module for module; :func:`ema_modules` pairs them,
:func:`ema_pairs` matches their parameters by name, :func:`ema_` applies the rule to one tensor
(a whole parameter, or one rank's partition of it under ZeRO-3: the same arithmetic slice by
slice), and buffers (e.g. geo-context prototypes, updated by their own EMA in the forward pass)
are copied by :func:`copy_buffers`. The pre-trainer's ``update_teacher`` and the ZeRO-3 update of
:mod:`skysense.training.teacher` both use these.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import torch

from skysense.core.errors import TrainingError

ModulePairs = Sequence[tuple[torch.nn.Module, torch.nn.Module]]


@runtime_checkable
class PairedTeacher(Protocol):
    """A pre-trainer that names its own ``(student_side, teacher_side)`` module pairs."""

    def ema_modules(self) -> list[tuple[torch.nn.Module, torch.nn.Module]]:
        """The module pairs the EMA links."""
        ...


def ema_modules(pretrainer: torch.nn.Module) -> list[tuple[torch.nn.Module, torch.nn.Module]]:
    """``(student_side, teacher_side)`` module pairs of a pre-trainer.

    A :class:`PairedTeacher` (the SkySense pre-trainer: ``student`` -> ``teacher.encoder``,
    ``heads`` -> ``teacher.heads``) names them; otherwise a plain ``student``/``teacher`` pair.

    Raises:
        TrainingError: the module has no student/teacher pair.
    """
    if isinstance(pretrainer, PairedTeacher):
        return pretrainer.ema_modules()
    student = getattr(pretrainer, "student", None)
    teacher = getattr(pretrainer, "teacher", None)
    if isinstance(student, torch.nn.Module) and isinstance(teacher, torch.nn.Module):
        return [(student, teacher)]
    raise TrainingError(
        f"{type(pretrainer).__name__} has no registered 'student'/'teacher' modules: the EMA "
        "teacher cannot be updated"
    )


def ema_pairs(pairs: ModulePairs) -> Iterator[tuple[torch.nn.Parameter, torch.nn.Parameter]]:
    """``(student_param, teacher_param)`` pairs of module pairs, matched by name.

    Raises:
        TrainingError: a teacher parameter has no student counterpart.
    """
    for s_mod, t_mod in pairs:
        student_params = dict(s_mod.named_parameters())
        for name, t_param in t_mod.named_parameters():
            s_param = student_params.get(name)
            if s_param is None:
                raise TrainingError(f"teacher parameter {name!r} has no student counterpart")
            yield s_param, t_param


@torch.no_grad()
def ema_(teacher: torch.Tensor, student: torch.Tensor, momentum: float) -> None:
    """In place: ``teacher = momentum * teacher + (1 - momentum) * student``."""
    teacher.mul_(momentum).add_(student.to(teacher.dtype), alpha=1.0 - momentum)


def persistent_buffers(module: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, buffer)`` of the buffers a state dict holds (e.g. the geo-context prototypes);
    non-persistent ones (window coordinate tables rebuilt for each input size) are left out.
    """
    for prefix, mod in module.named_modules():
        for name, buf in mod._buffers.items():
            if buf is not None and name not in mod._non_persistent_buffers_set:
                yield (f"{prefix}.{name}" if prefix else name), buf


@torch.no_grad()
def copy_buffers(pairs: ModulePairs) -> None:
    """Copy every persistent student buffer onto the teacher's buffer of the same name.

    Non-persistent buffers are each side's own: the Swin window tables follow the last input
    size a module saw (the student also sees the smaller multi-crop local views).
    """
    for s_mod, t_mod in pairs:
        student_buffers = dict(persistent_buffers(s_mod))
        for name, t_buf in persistent_buffers(t_mod):
            if name in student_buffers:
                t_buf.copy_(student_buffers[name])


@torch.no_grad()
def ema_update(pairs: ModulePairs, momentum: float) -> None:
    """One EMA step over whole (unpartitioned) parameters, then the buffers."""
    for s_param, t_param in ema_pairs(pairs):
        # in place on the parameter itself, not on ``.data``: after a DeepSpeed ZeRO-2
        # ``load_checkpoint`` an update through ``.data`` made a resumed run drift from an
        # uninterrupted one (measured: every weight differed two steps after the resume)
        ema_(t_param, s_param.detach(), momentum)
    copy_buffers(pairs)
