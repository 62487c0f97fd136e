"""Atomic writes of params, catalogs and reports: a write that fails midway leaves the old file.

The failure is real, not simulated: a child process runs the writer under a file-size limit
(``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored), so the kernel refuses every byte past the limit with
``EFBIG`` exactly as a full disk refuses them with ``ENOSPC``.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from skysense.core.atomic_files import replace_atomically, write_text_atomic

REPO = Path(__file__).resolve().parents[2]
LIMIT_BYTES = 600


def run_under_size_limit(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child interpreter that may not write a file past ``LIMIT_BYTES``."""
    prologue = textwrap.dedent(f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT_BYTES}, {LIMIT_BYTES}))
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-c", prologue + textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def test_write_text_atomic_replaces_keeps_mode_and_follows_links(tmp_path: Path) -> None:
    target = tmp_path / "real" / "params.yaml"
    target.parent.mkdir()
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "params.yaml"
    link.symlink_to(target)
    write_text_atomic(link, "new\n")
    assert link.is_symlink() and target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert leftovers(target.parent) == [] and leftovers(tmp_path) == []


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    target.write_text('{"chips": 9}\n')
    with pytest.raises(RuntimeError, match="writer died"), replace_atomically(target) as tmp:
        tmp.write_text('{"chi')
        raise RuntimeError("writer died")
    assert target.read_text() == '{"chips": 9}\n' and leftovers(tmp_path) == []


def test_catalog_write_that_runs_out_of_space_keeps_the_old_catalog(tmp_path: Path) -> None:
    """Before: save_catalog truncated the catalog, wrote 600 bytes and died, leaving a part."""
    from skysense.data.catalog import (
        Acquisition,
        Catalog,
        Location,
        ModalityEntry,
        load_catalog,
        save_catalog,
    )

    acqs = [
        Acquisition(date=f"2023-05-{d:02d}", file=Path(f"s2/scene-with-a-long-name-{d:02d}.tif"))
        for d in range(1, 21)
    ]
    catalog = Catalog(
        name="area",
        root=tmp_path,
        locations=[
            Location(
                id="zurich-01",
                modalities={"s2": ModalityEntry(sensor="sentinel2", acquisitions=acqs)},
            )
        ],
    )
    path = save_catalog(catalog, tmp_path / "catalog.yaml")
    before = path.read_bytes()
    assert len(before) > 2 * LIMIT_BYTES
    code = f"""
        from skysense.data.catalog import load_catalog, save_catalog
        cat = load_catalog({str(path)!r})
        cat.name = "area-renamed"
        try:
            save_catalog(cat, {str(path)!r})
        except OSError as exc:
            print("write failed:", exc.errno)
    """
    res = run_under_size_limit(code, tmp_path)
    assert "write failed: 27" in res.stdout, res.stdout + res.stderr  # EFBIG
    assert path.read_bytes() == before and load_catalog(path).name == "area"
    assert leftovers(tmp_path) == []
