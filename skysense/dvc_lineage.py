"""DVC lineage: the content hashes DVC recorded for datasets and checkpoints.

``dvc repro`` writes ``dvc.lock`` with the md5 of every stage's dependencies and outputs (a
directory's md5 ends in ``.dir``). MLflow runs and registered model versions carry these hashes
as tags, so a model traces back to the exact chips and checkpoint that made it. Reading the lock
file needs no DVC import (fast, works in any process).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

LOCK_FILE = "dvc.lock"

# Tag name -> path in the default layout (params.yaml: paths) whose DVC md5 it carries.
LINEAGE_PATHS: dict[str, str] = {
    "dvc.sample_md5": "data/sample",
    "dvc.data_md5": "data/chips",
    "dvc.checkpoint_md5": "checkpoints/deepspeed",
    "dvc.export_md5": "checkpoints/export",
}


def find_repo_root(start: str | Path = ".") -> Path | None:
    """The nearest folder at or above ``start`` that holds a ``.dvc`` folder, else ``None``."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / ".dvc").is_dir():
            return folder
    return None


def _read_lock(root: Path) -> dict[str, Any]:
    lock = root / LOCK_FILE
    if not lock.exists():
        return {}
    try:
        data = yaml.safe_load(lock.read_text()) or {}
    except yaml.YAMLError:
        return {}
    return data.get("stages", {}) if isinstance(data, dict) else {}


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
    wanted = target.as_posix().rstrip("/")
    stages = _read_lock(root)
    for section in ("outs", "deps"):
        for stage in stages.values():
            for entry in stage.get(section, []) or []:
                if str(entry.get("path", "")).rstrip("/") == wanted and entry.get("md5"):
                    return str(entry["md5"])
    return None


def lineage_tags(repo_root: str | Path | None = None, paths: dict[str, str] | None = None) -> dict[str, str]:
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
