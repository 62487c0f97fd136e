"""`skysense data chip` fails when a location fails at chip time, unless partial is allowed.

Before, a location that failed while chipping (here: a raster truncated after validation passed
it) was printed in yellow and the command exited 0, so DVC recorded the partial set.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from skysense.cli import app
from skysense.data.catalog import Catalog, load_catalog, save_catalog

CHIP = ["--set", "data.chip.workers=1", "--set", "data.chip.size=16"]


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture()
def validated_then_truncated(
    tmp_path: Path, location_factory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Two locations that pass validation; then one S2 raster of loc-b is cut to half its size."""
    monkeypatch.chdir(tmp_path)  # no ./params.yaml: embedded defaults
    root = tmp_path / "scenes"
    cat = Catalog(
        name="area",
        root=root,
        locations=[
            location_factory(root, "loc-a", seed=1),
            location_factory(root, "loc-b", x0=470000.0, seed=2),
        ],
    )
    catalog = save_catalog(cat, tmp_path / "catalog.yaml")
    res = CliRunner().invoke(
        app, ["validate", "--catalog", str(catalog), "--out", str(tmp_path / "report"), "--json"]
    )
    assert res.exit_code == 0, res.output
    accepted = tmp_path / "report" / "accepted_catalog.yaml"
    assert [loc.id for loc in load_catalog(accepted).locations] == ["loc-a", "loc-b"]
    victim = root / load_catalog(accepted).location("loc-b").modalities["s2"].acquisitions[1].file
    victim = victim if victim.is_absolute() else accepted.parent / victim
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    return accepted


def test_a_location_failing_at_chip_time_fails_the_command_after_the_summary(
    validated_then_truncated: Path, tmp_path: Path
) -> None:
    out = tmp_path / "chips"
    res = CliRunner().invoke(
        app, ["data", "chip", "--catalog", str(validated_then_truncated), "--out", str(out), *CHIP]
    )
    assert res.exit_code == 5, res.output
    err = _flat(res.stderr)
    assert "1 of 2 location(s) failed" in err and "loc-b:" in err and "--allow-partial" in err
    assert "Traceback" not in res.output
    summary = json.loads((out / "summary.json").read_text())  # written before failing
    assert list(summary["failed"]) == ["loc-b"] and summary["chips"] > 0
    assert set(pd.read_parquet(out / "manifest.parquet").location) == {"loc-a"}


@pytest.mark.parametrize("accept", [["--allow-partial"], ["--set", "data.chip.allow_partial=true"]])
def test_allow_partial_exits_0_and_the_summary_lists_the_failed_location(
    validated_then_truncated: Path, tmp_path: Path, accept: list[str]
) -> None:
    out = tmp_path / "chips"
    res = CliRunner().invoke(
        app,
        [
            "data",
            "chip",
            "--catalog",
            str(validated_then_truncated),
            "--out",
            str(out),
            "--json",
            *CHIP,
            *accept,
        ],
    )
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert list(payload["failed"]) == ["loc-b"] and payload["chips"] > 0
    assert "loc-b" in json.loads((out / "summary.json").read_text())["failed"]


def test_every_location_failing_fails_even_with_allow_partial(
    tmp_path: Path, location_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "scenes"
    loc = location_factory(root, "loc-a", seed=1)
    for acq in loc.modalities["s2"].acquisitions:
        (root / acq.file).write_text("not a raster\n")
    catalog = save_catalog(
        Catalog(name="area", root=root, locations=[loc]), tmp_path / "catalog.yaml"
    )
    res = CliRunner().invoke(
        app,
        [
            "data",
            "chip",
            "--catalog",
            str(catalog),
            "--out",
            str(tmp_path / "c"),
            "--allow-partial",
            *CHIP,
        ],
    )
    assert res.exit_code == 5, res.output
    err = _flat(res.stderr)
    assert "1 of 1 location(s) failed, and no chip was written: loc-a:" in err
    assert "--allow-partial" not in err  # it cannot accept an empty set


def test_a_disk_that_fills_while_merging_exits_3_naming_the_folder(
    tmp_path: Path, location_factory
) -> None:
    """Each location's part fits, the merged shard does not: a real EFBIG (RLIMIT_FSIZE, as a
    full disk gives ENOSPC) while merging was a traceback with exit 1 ("refused").
    """
    import os
    import subprocess
    import sys
    import textwrap

    root = tmp_path / "scenes"
    cat = Catalog(
        name="area",
        root=root,
        locations=[
            location_factory(root, "loc-a", seed=1),
            location_factory(root, "loc-b", x0=470000.0, seed=2),
        ],
    )
    catalog = save_catalog(cat, tmp_path / "catalog.yaml")
    args = ["data", "chip", "--catalog", str(catalog), "--out", str(tmp_path / "ref"), *CHIP]
    assert CliRunner().invoke(app, args).exit_code == 0
    merged = sum(p.stat().st_size for p in (tmp_path / "ref").glob("shard-*.bin"))
    limit = int(merged * 0.75)  # one location's part (about half) fits, both together do not
    code = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        from skysense.cli import app
        sys.argv = ["skysense", "data", "chip", "--catalog", {str(catalog)!r}, "--out",
        {str(tmp_path / "c")!r},
                    *{CHIP!r}]
        app()
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), COLUMNS="200")
    res = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 3, res.stdout + res.stderr[-3000:]
    assert f"{tmp_path / 'c'}: writing the chips failed (File too large)" in res.stderr
    assert "Traceback" not in res.stderr
