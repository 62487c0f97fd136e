"""Where predictions are written, without ever touching an input.

- :func:`refuse_input_as_output`: an output that is one of the inputs (the same file, also through
  a symlink or a hard link: :func:`os.path.samefile`) is refused before anything is opened for
  writing.
- :func:`prediction_outputs`: the output path of each scene of a batch (``<out_dir>/<id>.tif``,
  and its STAC item ``<id>.json``), ids checked (:mod:`skysense.core.output_paths`), no two
  scenes on one output, no output on an input
  of any scene of the batch.
- :func:`replacing`: a GeoTIFF is written to a hidden temporary file in the output's folder
  (``.<name>.<random>.partial``, which no reader takes for a finished output) and moved into place
  with :func:`os.replace` only once complete; a failure removes it, and a killed run leaves the
  previous output (if any) as it was.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from skysense.core.output_paths import check_id, path_inside
from skysense.inference.scene import PredictInputError

PARTIAL_SUFFIX = ".partial"


class OutputIsInputError(PredictInputError):
    """The output path names one of the prediction's input files."""


class PredictOutputError(PredictInputError):
    """The output GeoTIFF cannot be written (folder missing or read-only, disk full)."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


def refuse_input_as_output(output: str | Path, inputs: Iterable[str | Path]) -> None:
    """Refuse ``output`` when it is one of ``inputs``.

    Args:
        output: the GeoTIFF about to be written.
        inputs: every file the prediction reads (rasters, probe head).

    Raises:
        OutputIsInputError: naming the output and the input it would overwrite.
    """
    out = Path(output)
    for src in inputs:
        if _same_file(out, Path(src)):
            raise OutputIsInputError(
                f"{out}: this output is the input {src}; writing it would destroy the input. "
                "Pass an --output path (or an output folder) that is not one of the inputs"
            )


def prediction_outputs(
    scenes: Iterable[tuple[str, Iterable[str | Path]]], out_dir: str | Path
) -> dict[str, Path]:
    """The output GeoTIFF of each scene of a batch: ``<out_dir>/<id>.tif``.

    Checked for the whole batch before any scene is written: a scene's output must not be an
    input of any scene (the later one would read a destroyed file).

    Args:
        scenes: ``(scene id, files that scene reads)`` per scene.
        out_dir: the predictions folder.

    Returns:
        Per scene id, its output path.

    Raises:
        UnsafeIdError: a scene id that is not a plain name.
        OutsideOutputError: an output that resolves outside ``out_dir``.
        PredictInputError: two scenes with the same id (they would write one file).
        OutputIsInputError: an output that is an input of any scene of the batch.
    """
    pairs = [(scene_id, [Path(p) for p in paths]) for scene_id, paths in scenes]
    every_input = [p for _, paths in pairs for p in paths]
    outputs: dict[str, Path] = {}
    for scene_id, _ in pairs:
        if scene_id in outputs:
            raise PredictInputError(
                f"scene id {scene_id!r} appears twice; both would write {outputs[scene_id]}. "
                "Give every scene its own id"
            )
        path = path_inside(out_dir, f"{check_id(scene_id, 'scene id')}.tif")
        refuse_input_as_output(path, every_input)
        refuse_input_as_output(path.with_suffix(".json"), every_input)  # its STAC item
        outputs[scene_id] = path
    return outputs


def partial_path(output: str | Path) -> Path:
    """A fresh temporary name beside ``output``: hidden, and not ending in ``.tif``."""
    out = Path(output)
    return out.with_name(f".{out.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}")


@contextmanager
def replacing(output: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``output`` atomically.

    On an exception the temporary file is removed and ``output`` is left as it was.

    Raises:
        PredictOutputError: the finished file cannot be moved into place.
    """
    out = Path(output)
    tmp = partial_path(out)
    try:
        yield tmp
        try:
            os.replace(tmp, out)
        except OSError as exc:
            raise PredictOutputError(
                f"{out}: cannot move the finished prediction into place ({exc.strerror}); "
                "check that the path is a writable file location"
            ) from None
    finally:
        if tmp.exists():
            tmp.unlink()
