"""SkySense model: factorized multi-modal encoder, geo-context prototypes, presets.

Public API (see ``docs/interfaces.md``): :func:`create_model`, :class:`SkySense`,
:class:`SkySenseSpec`, ``PRESETS``; ``SkySensePretrainer`` lives in
``skysense.models.pretraining``.
"""

from skysense.models.presets import PRESETS, SkySenseSpec, resolve_spec
from skysense.models.skysense import SkySense, create_model

__all__ = ["PRESETS", "SkySense", "SkySenseSpec", "create_model", "resolve_spec"]
