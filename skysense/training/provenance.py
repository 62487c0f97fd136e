"""Lineage of a run: the data version of the chips and the code version (git commit)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import yaml

MANIFEST = "manifest.parquet"


def _dvc_md5(chips_dir: Path) -> str | None:
    """The md5 DVC recorded for ``chips_dir`` in ``<chips>.dvc`` or a ``dvc.lock`` above it."""
    chips_dir = chips_dir.resolve()
    dvc_file = chips_dir.with_name(chips_dir.name + ".dvc")
    candidates: list[tuple[Path, list[dict]]] = []
    if dvc_file.is_file():
        doc = yaml.safe_load(dvc_file.read_text()) or {}
        candidates.append((dvc_file.parent, doc.get("outs", []) or []))
    for folder in [chips_dir.parent, *chips_dir.parent.parents]:
        lock = folder / "dvc.lock"
        if lock.is_file():
            doc = yaml.safe_load(lock.read_text()) or {}
            for stage in (doc.get("stages") or {}).values():
                candidates.append((folder, (stage or {}).get("outs", []) or []))
            break
    for base, outs in candidates:
        for out in outs:
            if isinstance(out, dict) and "path" in out and (base / out["path"]).resolve() == chips_dir:
                md5 = out.get("md5")
                if md5:
                    return f"dvc:{md5}"
    return None


def data_version(chips_dir: Path | None) -> str:
    """Version of a chips folder: its DVC md5 when DVC tracks it, else the manifest's sha256.

    Returns ``"dvc:<md5>"``, ``"sha256:<hex>"`` or ``"unknown"`` (no folder or no manifest).
    """
    if chips_dir is None:
        return "unknown"
    chips_dir = Path(chips_dir)
    try:
        md5 = _dvc_md5(chips_dir)
    except (OSError, yaml.YAMLError):
        md5 = None
    if md5 is not None:
        return md5
    manifest = chips_dir / MANIFEST
    if not manifest.is_file():
        return "unknown"
    digest = hashlib.sha256()
    with open(manifest, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def git_commit(cwd: Path | None = None) -> str:
    """The current git commit (with ``-dirty`` when tracked files changed), or ``"unknown"``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit
