"""SkySense model: factorized multi-modal encoder, geo-context prototypes, presets.

Public API (see ``docs/interfaces.md``): :func:`create_model`, :class:`SkySense`,
:class:`SkySenseSpec`, ``PRESETS``; ``SkySensePretrainer`` lives in
``skysense.models.pretraining``.

The presets are plain data and import at once; the torch-backed names load on first use, so
reading a params file (which checks the preset name) does not pay torch's import (~2.5 s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from skysense.models.presets import PRESETS, SkySenseSpec, resolve_spec

if TYPE_CHECKING:
    from skysense.models.skysense import SkySense, create_model

__all__ = ["PRESETS", "SkySense", "SkySenseSpec", "create_model", "resolve_spec"]
_LAZY = {"SkySense", "create_model"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from skysense.models import skysense as module

        return getattr(module, name)
    raise AttributeError(f"module 'skysense.models' has no attribute {name!r}")
