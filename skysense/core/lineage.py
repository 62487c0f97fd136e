"""Lineage: the versions that make a model traceable (data, checkpoint, params and code).

- DVC's content hashes: ``dvc repro`` writes ``dvc.lock`` with the md5 of every stage's
  dependencies and outputs (a directory's md5 ends in ``.dir``); ``dvc add`` writes
  ``<path>.dvc``. :func:`dvc_md5` and :func:`data_version` read them (no DVC import: fast, any
  process); MLflow runs and registered versions carry them as tags (:func:`lineage_tags`).
- File and settings hashes: :func:`file_sha256` (checkpoints, exports), :func:`params_hash`.
- Code: :func:`git_commit`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

LOCK_FILE = "dvc.lock"
MANIFEST = "manifest.parquet"

# Tag name -> path in the default layout (params.yaml: paths) whose DVC md5 it carries.
LINEAGE_PATHS: dict[str, str] = {
    "dvc.sample_md5": "data/sample",
    "dvc.data_md5": "data/chips",
    "dvc.checkpoint_md5": "checkpoints/deepspeed",
    "dvc.export_md5": "checkpoints/export",
}


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in ``chunk``-byte blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def params_hash(params: dict[str, Any]) -> str:
    """SHA-256 (first 16 hex) of the canonical JSON of the settings that shape a model."""
    blob = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def find_repo_root(start: str | Path = ".") -> Path | None:
    """The nearest folder at or above ``start`` that holds a ``.dvc`` folder, else ``None``."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / ".dvc").is_dir():
            return folder
    return None


def _lock_stages(root: Path) -> dict[str, Any]:
    """The ``stages`` mapping of ``root/dvc.lock`` (empty when absent or unreadable)."""
    lock = root / LOCK_FILE
    if not lock.is_file():
        return {}
    try:
        data = yaml.safe_load(lock.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    stages = data.get("stages", {}) if isinstance(data, dict) else {}
    return stages if isinstance(stages, dict) else {}


def _recorded(entries: Any, wanted: str) -> str | None:
    """The md5 of the entry whose ``path`` is ``wanted`` (POSIX, relative) in a DVC list."""
    for entry in entries or []:
        if (
            isinstance(entry, dict)
            and str(entry.get("path", "")).rstrip("/") == wanted
            and entry.get("md5")
        ):
            return str(entry["md5"])
    return None


def _lock_md5(root: Path, target: Path, sections: tuple[str, ...]) -> str | None:
    """The md5 ``root/dvc.lock`` records for ``target`` (relative to ``root``) in ``sections``."""
    wanted = target.as_posix().rstrip("/")
    stages = _lock_stages(root)
    for section in sections:
        for stage in stages.values():
            if isinstance(stage, dict) and (md5 := _recorded(stage.get(section), wanted)):
                return md5
    return None


def dvc_md5(path: str | Path, repo_root: str | Path | None = None) -> str | None:
    """The md5 DVC recorded for ``path`` in ``dvc.lock`` (outputs first, then dependencies).

    Args:
        path: a stage output or dependency, absolute or relative to the repository root, e.g.
            ``data/chips`` or ``checkpoints/export``.
        repo_root: the DVC repository; default: found from the current folder upwards.

    Returns:
        The md5 string (``...dir`` for a directory), or ``None`` when there is no DVC
        repository, no ``dvc.lock``, or the path is not recorded there (e.g. a ``--no-dvc`` run).
    """
    root = Path(repo_root).resolve() if repo_root is not None else find_repo_root()
    if root is None:
        return None
    target = Path(path)
    if target.is_absolute():
        try:
            target = target.resolve().relative_to(root)
        except ValueError:
            return None
    return _lock_md5(root, target, ("outs", "deps"))


def lineage_tags(
    repo_root: str | Path | None = None, paths: dict[str, str] | None = None
) -> dict[str, str]:
    """MLflow tags ``{tag: md5}`` for the paths DVC recorded (missing ones are left out).

    Args:
        repo_root: the DVC repository; default: found from the current folder upwards.
        paths: tag name -> path; default :data:`LINEAGE_PATHS`.
    """
    tags: dict[str, str] = {}
    for tag, path in (paths or LINEAGE_PATHS).items():
        md5 = dvc_md5(path, repo_root)
        if md5 is not None:
            tags[tag] = md5
    return tags


def _folder_md5(folder: Path) -> str | None:
    """The md5 DVC recorded for ``folder`` as an output: in ``<folder>.dvc`` (``dvc add``), else in
    the nearest ``dvc.lock`` above it (``dvc repro``).
    """
    folder = folder.resolve()
    dvc_file = folder.with_name(folder.name + ".dvc")
    if dvc_file.is_file():
        try:
            doc = yaml.safe_load(dvc_file.read_text()) or {}
        except (OSError, yaml.YAMLError):
            doc = {}
        if isinstance(doc, dict) and (md5 := _recorded(doc.get("outs"), folder.name)):
            return md5
    for above in folder.parents:
        if (above / LOCK_FILE).is_file():
            return _lock_md5(above, folder.relative_to(above), ("outs",))
    return None


def data_version(chips_dir: Path | None) -> str:
    """Version of a chips folder: its DVC md5 when DVC tracks it, else the manifest's sha256.

    Returns ``"dvc:<md5>"``, ``"sha256:<hex>"`` or ``"unknown"`` (no folder or no manifest).
    """
    if chips_dir is None:
        return "unknown"
    chips_dir = Path(chips_dir)
    md5 = _folder_md5(chips_dir)
    if md5 is not None:
        return f"dvc:{md5}"
    manifest = chips_dir / MANIFEST
    if not manifest.is_file():
        return "unknown"
    return f"sha256:{file_sha256(manifest)}"


def labels_version(folder: Path, index: str = "index.csv") -> str:
    """Version of a label folder: the DVC md5 of it or of the nearest DVC-tracked folder above it
    (e.g. the ``sample`` stage's output holding ``downstream/``), else the sha256 of its
    ``index`` file, else of its sorted file list; ``"dvc:<md5>"``, ``"sha256:<hex>"`` or
    ``"unknown"``.
    """
    folder = Path(folder).resolve()
    for candidate in (folder, *list(folder.parents)[:3]):
        md5 = _folder_md5(candidate)
        if md5 is not None:
            return f"dvc:{md5}" if candidate == folder else f"dvc:{md5}:{folder.name}"
    for sub in (folder / index, *sorted(folder.glob(f"*/{index}"))):
        if sub.is_file():
            return f"sha256:{file_sha256(sub)}"
    if folder.is_dir():
        names = "\n".join(sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")))
        return f"sha256:{hashlib.sha256(names.encode()).hexdigest()}"
    return "unknown"


def git_commit(cwd: Path | None = None) -> str:
    """The current git commit (with ``-dirty`` when tracked files changed), or ``"unknown"``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit
