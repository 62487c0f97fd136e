"""The pre-training objectives by name (``train.objective``): ``paper`` (the paper's
self-distillation, :mod:`skysense.models.paper_objective`) or ``legacy`` (the InfoNCE recipe,
:class:`skysense.models.pretraining.SkySensePretrainer`), a named alternative kept because it
measured better in short CPU runs (docs/objective.md). ``paper`` is the default.
"""

from __future__ import annotations

from typing import Any

from skysense.core.errors import PresetError
from skysense.models.paper_objective import PaperPretrainer
from skysense.models.pretraining import SkySensePretrainer
from skysense.models.skysense import SkySense

OBJECTIVES = ("paper", "legacy")


def create_pretrainer(
    model: SkySense, train: Any, register_teacher: bool = True
) -> SkySensePretrainer:
    """The pre-trainer of ``train.objective`` around the student ``model``.

    Args:
        model: the student encoder.
        train: the ``train`` settings (``objective``, ``paper``, ``loss_weights``, ``augment``).
        register_teacher: keep the teacher in the module tree (False for ZeRO-3).

    Raises:
        PresetError: an unknown objective name.
    """
    name = getattr(train, "objective", "paper")
    if name == "paper":
        return PaperPretrainer(
            model, augment=train.augment, paper=train.paper, register_teacher=register_teacher
        )
    if name == "legacy":
        return SkySensePretrainer(
            model,
            loss_weights=train.loss_weights,
            augment=train.augment,
            register_teacher=register_teacher,
        )
    raise PresetError(f"train.objective is {name!r}; use one of {', '.join(OBJECTIVES)}")
