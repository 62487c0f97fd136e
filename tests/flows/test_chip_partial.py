"""The pipeline's chip fan-out applies the same rule as `skysense data chip`: a location that
failed while chipping fails the stage (nothing for `dvc commit` to record) unless
``data.chip.allow_partial``; before, only "0 chips" failed it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from flows.fanout import finalize_chips_task
from flows.stages import StageFailed
from skysense.config import chip_settings, load_config
from skysense.data.catalog import load_catalog
from skysense.data.chipping import chip_location

SMALL = [
    "data.sample.locations=2",
    "data.sample.heldout_locations=1",
    "data.sample.size_px=32",
    "data.sample.s2_dates=3",
    "data.sample.s1_dates=2",
    "data.sample.workers=1",
    "data.chip.workers=1",
]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    from skysense.data.synthetic.sample import write_sample

    tmp = tmp_path_factory.mktemp("chip-partial")
    cfg = load_config(None, SMALL)
    catalog = write_sample(tmp / "sample", cfg.data.sample, cfg.data.seed)
    cat = load_catalog(catalog)
    victim = cat.root / cat.locations[1].modalities["s2"].acquisitions[0].file
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])  # cut after validation
    return catalog, cfg


def _chip_parts(catalog: Path, out: Path, cfg) -> list[dict]:
    cat = load_catalog(catalog)
    settings = chip_settings(cfg)
    return [
        asdict(chip_location(loc, cat.root, out, settings, i))
        for i, loc in enumerate(cat.locations)
    ]


def test_finalize_fails_the_stage_on_a_failed_location(sample, tmp_path: Path) -> None:
    catalog, cfg = sample
    bad = load_catalog(catalog).locations[1].id
    out = tmp_path / "chips"
    results = _chip_parts(catalog, out, cfg)
    bands = {"s2": cfg.data.s2_bands, "s1": cfg.data.s1_bands, "hr": cfg.data.hr_bands}
    with pytest.raises(
        StageFailed, match=rf"stage 'chip' failed: 1 of 3 location\(s\) failed.*{bad}:"
    ):
        finalize_chips_task.fn(str(out), results, 2**20, bands, allow_partial=False)
    assert list(json.loads((out / "summary.json").read_text())["failed"]) == [bad]
    assert not (out / "stats.json").exists()


def test_finalize_accepts_a_partial_set_when_allowed(sample, tmp_path: Path) -> None:
    catalog, cfg = sample
    bad = load_catalog(catalog).locations[1].id
    out = tmp_path / "chips"
    results = _chip_parts(catalog, out, cfg)
    bands = {"s2": cfg.data.s2_bands, "s1": cfg.data.s1_bands, "hr": cfg.data.hr_bands}
    done = finalize_chips_task.fn(str(out), results, 2**20, bands, allow_partial=True)
    assert list(done["failed"]) == [bad] and done["chips"] > 0 and (out / "stats.json").exists()
