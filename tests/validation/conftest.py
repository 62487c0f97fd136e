"""Fixtures: the bad-input corpus validated once per module (GX runs take seconds)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

from skysense.validation.gate import ValidationReport, validate_catalog
from skysense.validation.settings import ValidationConfig

from .corpus import build_corpus

TODAY = dt.date(2025, 1, 15)


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under a folder."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="package")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The corpus catalog and ``{item_id: check that must quarantine it}``."""
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="package")
def corpus_run(
    corpus, tmp_path_factory
) -> tuple[ValidationReport, dict[str, str], dict[str, str], Path]:
    """Validate the corpus once: (report, expected failures, checksums before, out dir)."""
    catalog, expected = corpus
    before = checksums(catalog.parent / "rasters")
    out = tmp_path_factory.mktemp("validation")
    report = validate_catalog(catalog, out, ValidationConfig(), today=TODAY)
    return report, expected, before, out
