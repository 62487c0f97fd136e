"""Errors a user can cause and fix; the CLI prints them without a traceback."""

from __future__ import annotations


class SkySenseError(Exception):
    """Base of every user-fixable error: the message says which file or setting and what to do."""


class RasterReadError(SkySenseError):
    """A raster cannot be read as its sensor spec expects (corrupt, truncated, no CRS, bands)."""


class NoValidDataError(SkySenseError):
    """A scene or chip holds no valid pixels (all nodata or all cloud)."""


class PresetError(SkySenseError, ValueError):
    """Unknown model preset or an override that does not fit it."""


class InputShapeError(SkySenseError, ValueError):
    """Model inputs whose shapes or band counts do not fit the preset."""


class TrainingError(SkySenseError):
    """A training run failed (NaN loss, a rank died, out of memory); the last good checkpoint is kept."""


class RegistryError(SkySenseError):
    """A registry operation cannot be done (no challenger, unknown version, server unreachable)."""


class ValidationFailed(SkySenseError):
    """The validation gate failed: too few accepted items, or the catalog is unusable."""
