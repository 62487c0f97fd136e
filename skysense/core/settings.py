"""Base of every settings section of ``params.yaml``: strict keys, validated assignments, finite
numbers. Each layer defines the sections it reads (e.g. :mod:`skysense.data.settings`);
:mod:`skysense.config` assembles them into the file's layout and loads it.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated, and
    every float (nested in lists, tuples and dicts too) must be finite: NaN or infinity makes
    comparisons silently false (a NaN threshold passes every check).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def require_finite(value: Any, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` when ``value`` holds a NaN or infinite float."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value}; use a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            require_finite(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            require_finite(item, f"{where}[{i}]")
