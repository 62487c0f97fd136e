"""Lineage of a model version: checkpoint hash and params hash (data and code versions come from
``skysense.training.provenance``, recorded in the export's ``config.json``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def params_hash(params: dict[str, Any]) -> str:
    """SHA-256 (first 16 hex) of the canonical JSON of the settings that shape a model."""
    blob = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
