"""Output paths built from ids: the safe id pattern, and the check that a path stays in its folder.

A location or scene id comes from a catalog or a scene list, that is from outside; several writers
turn it into a file name (``<predictions>/<id>.tif``, ``s2/<id>_<date>.tif``,
``segmentation/<id>_r000_c000/``). An id like ``../../x`` or ``/abs/x`` would then write outside
the output folder. Two guards, used together:

- :func:`check_id`: ids match :data:`SAFE_ID_PATTERN` (a letter or digit, then letters, digits,
  ``.``, ``_``, ``-``; at most 128 characters; never ``..``). Catalogs are checked when parsed.
- :func:`path_inside`: every path a writer builds from an id is joined to its output folder and
  must resolve (symlinks followed) inside it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from skysense.core.errors import SkySenseError

SAFE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
SAFE_ID_RULE = f"{SAFE_ID_PATTERN} and no '..'"
_SAFE_ID = re.compile(SAFE_ID_PATTERN)


class UnsafeIdError(SkySenseError, ValueError):
    """An id that cannot safely become a file name (path separators, ``..``, odd characters)."""


class OutsideOutputError(SkySenseError, ValueError):
    """A path built for writing resolves outside the output folder it belongs to."""


def is_safe_id(value: object) -> bool:
    """Whether ``value`` is a string that matches :data:`SAFE_ID_PATTERN` and holds no ``..``."""
    return isinstance(value, str) and _SAFE_ID.fullmatch(value) is not None and ".." not in value


def unsafe_id_message(value: object, what: str = "id") -> str:
    """The explanation of why ``value`` is refused, with the allowed pattern."""
    return (
        f"{what} {value!r} is not allowed: ids become file names, so they must match "
        f"{SAFE_ID_RULE} (letters, digits, '.', '_', '-'; no '/', no spaces); rename it"
    )


def check_id(value: object, what: str = "id") -> str:
    """Return ``value`` when it is a safe id.

    Args:
        value: the id (a location id, a scene id).
        what: how to name it in the error, e.g. ``"scene id"``.

    Raises:
        UnsafeIdError: naming the id and the allowed pattern.
    """
    if not is_safe_id(value):
        raise UnsafeIdError(unsafe_id_message(value, what))
    return str(value)


def path_inside(folder: str | Path, *parts: str | os.PathLike[str]) -> Path:
    """``folder / parts...``, refused unless it resolves inside ``folder``.

    Symlinks are followed on both sides, so a folder that is itself a symlink is fine, but a link
    inside it that points elsewhere is not.

    Args:
        folder: the output folder the path must stay in.
        parts: the path pieces below it (file names built from ids).

    Returns:
        The joined path (not resolved).

    Raises:
        OutsideOutputError: naming the folder and the path.
    """
    base = Path(folder)
    path = base.joinpath(*parts)
    root, target = base.resolve(), path.resolve()
    if target == root or not target.is_relative_to(root):
        raise OutsideOutputError(
            f"{path}: resolves to {target}, outside the output folder {root}; "
            "output names come from ids, which must be plain names (see skysense.core.output_paths)"
        )
    return path
