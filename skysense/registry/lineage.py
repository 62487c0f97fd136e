"""Lineage of a model version: checkpoint hash, data version, code version, params hash."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_md5(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex MD5 of a file's bytes (what DVC records for a single file)."""
    digest = hashlib.md5()  # noqa: S324 - DVC's content id, not security
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def data_version(chips_dir: str | Path, repo_root: str | Path = ".") -> str:
    """The DVC md5 of the chip shards: from ``dvc.lock`` or ``<chips>.dvc`` when tracked,
    else the md5 of ``manifest.parquet`` (which names every shard, offset and size).

    Returns:
        ``"md5:<hex>"`` or ``"unknown"`` when neither exists.
    """
    chips = Path(chips_dir)
    root = Path(repo_root)
    rel = str(chips.resolve().relative_to(root.resolve())) if chips.is_absolute() else str(chips)
    lock = root / "dvc.lock"
    if lock.exists():
        try:
            stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        except yaml.YAMLError:
            stages = {}
        for stage in stages.values():
            for out in stage.get("outs", []) or []:
                if str(out.get("path", "")).rstrip("/") == rel.rstrip("/") and out.get("md5"):
                    return f"md5:{out['md5']}"
    dvc_file = Path(str(chips).rstrip("/") + ".dvc")
    if dvc_file.exists():
        outs = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs", [])
        if outs and outs[0].get("md5"):
            return f"md5:{outs[0]['md5']}"
    manifest = chips / "manifest.parquet"
    if manifest.exists():
        return f"md5:{file_md5(manifest)}"
    return "unknown"


def git_commit(repo_root: str | Path = ".") -> str:
    """HEAD commit of the repository at ``repo_root`` (``"unknown"`` outside git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True, text=True,
            timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def params_hash(params: dict[str, Any]) -> str:
    """SHA-256 (first 16 hex) of the canonical JSON of the settings that shape a model."""
    blob = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
