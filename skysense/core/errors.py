"""Errors a user can cause and fix; the CLI prints them without a traceback."""

from __future__ import annotations

from skysense.core.exit_codes import ExitCode


class SkySenseError(Exception):
    """Base of every user-fixable error: the message says which file or setting and what to do.

    ``exit_code`` is the command line's exit status for it (:mod:`skysense.core.exit_codes`).
    """

    exit_code: int = ExitCode.USAGE


class ConfigError(SkySenseError, ValueError):
    """A params file or an override is malformed; the message says which key and what to do."""


class CatalogError(SkySenseError, ValueError):
    """The catalog file is missing, not YAML, or does not follow the catalog schema."""


class RasterReadError(SkySenseError):
    """A raster cannot be read as its sensor spec expects (corrupt, truncated, no CRS, bands)."""


class RasterWriteError(SkySenseError):
    """A raster cannot be written (folder not writable, disk full, a file in the way)."""


class NoValidDataError(SkySenseError):
    """A scene or chip holds no valid pixels (all nodata or all cloud)."""


class PresetError(SkySenseError, ValueError):
    """Unknown model preset or an override that does not fit it."""


class InputShapeError(SkySenseError, ValueError):
    """Model inputs whose shapes or band counts do not fit the preset."""


class TrainingError(SkySenseError):
    """A training run failed (NaN loss, a rank died, out of memory); the last good checkpoint is
    kept.
    """

    exit_code = ExitCode.FAILED


class RegistryError(SkySenseError):
    """A registry operation cannot be done (no challenger, unknown version, server unreachable)."""


class RegistryUnavailable(RegistryError):
    """The MLflow tracking server or store is unreachable or answered with an error (HTTP, SQL)."""

    exit_code = ExitCode.REGISTRY_UNAVAILABLE
    last_answer: str | None = None
    """The server's last answer (HTTP status or connection error), where one was seen."""


class PartialResultError(SkySenseError):
    """Some items failed, so the output is incomplete; the summary written lists them."""

    exit_code = ExitCode.PARTIAL


class ValidationFailed(SkySenseError):
    """The validation gate failed: too few accepted items, or the catalog is unusable."""

    report: object | None = None
    """The gate's ``ValidationReport`` (the CLI prints its summary); None when none was made."""
