"""Fan-out of validation and chipping over locations as mapped Prefect tasks.

The per-location library functions (``skysense.data.chipping``, ``skysense.validation``) are
looked up when the stage runs; until they are installed the stage runs as one command.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from flows.runners import describe
from skysense.config import SkySenseConfig

FANOUT_STAGES = ("validate", "chip")

# stage -> (module, per-location function, finalize function)
FANOUT_FUNCTIONS: dict[str, tuple[str, str, str]] = {}


def available(stage: str) -> bool:
    """Whether the library offers the per-location functions of ``stage``."""
    spec = FANOUT_FUNCTIONS.get(stage)
    if spec is None:
        return False
    try:
        module = importlib.import_module(spec[0])
    except ImportError:
        return False
    return all(hasattr(module, name) for name in spec[1:])


def runner_description(cfg: SkySenseConfig) -> str:
    """The task runner the fan-out uses, in words."""
    return describe(cfg.pipeline)


def run_fanout_stage(stage: str, root: Path, cfg: SkySenseConfig, use_dvc: bool) -> dict[str, Any]:
    """Run ``stage`` as a mapped fan-out over locations (see :data:`FANOUT_FUNCTIONS`)."""
    raise KeyError(f"no fan-out registered for stage {stage!r}")
