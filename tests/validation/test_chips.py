"""Chip validation end to end: a small synthetic sample is chipped, chips are made bad, the gate
quarantines exactly those with the right reasons, and ChipDataset can leave them out.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skysense.config import chip_settings, load_config
from skysense.data.catalog import load_catalog
from skysense.data.chipping import chip_catalog
from skysense.data.dataset import ChipDataset
from skysense.data.shards import ShardError, ShardReader, ShardRef, encode_record
from skysense.validation.gate import ValidationReport, validate_catalog

from .conftest import TODAY

ROOT = Path(__file__).resolve().parents[2]
SMALL = [
    "data.sample.locations=1",
    "data.sample.heldout_locations=1",
    "data.sample.size_px=32",
    "data.sample.s2_dates=4",
    "data.sample.s1_dates=3",
    "data.chip.workers=1",
    "data.chip.size=16",  # 4 chips per 32 px location: the counts below
]


def _rewrite(chips: Path, sample_id: str, change) -> None:
    """Append a changed copy of a chip's record to its shard and point the manifest at it."""
    manifest = pd.read_parquet(chips / "manifest.parquet")
    row = manifest.index[manifest["sample_id"] == sample_id][0]
    ref = ShardRef(
        manifest.at[row, "shard"], int(manifest.at[row, "offset"]), int(manifest.at[row, "nbytes"])
    )
    _, arrays, attrs = ShardReader(chips).read_at(ref)
    arrays = {k: np.array(v) for k, v in arrays.items()}
    change(arrays)
    record = encode_record(sample_id, arrays, attrs)
    shard = chips / manifest.at[row, "shard"]
    offset = shard.stat().st_size
    with open(shard, "ab") as fh:
        fh.write(record)
    manifest.at[row, "offset"], manifest.at[row, "nbytes"] = offset, len(record)
    manifest.to_parquet(chips / "manifest.parquet", index=False)


@pytest.fixture(scope="module")
def chip_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[ValidationReport, dict[str, str], Path, Path]:
    """Sample (2 locations, 32 px), chips, four bad chips; validated once.

    Returns: (report, {sample_id: check that must quarantine it}, chips dir, out dir).
    """
    from skysense.data.synthetic.sample import write_sample

    tmp = tmp_path_factory.mktemp("chips")
    cfg = load_config(ROOT / "params.yaml", SMALL)
    catalog = write_sample(tmp / "sample", cfg.data.sample, cfg.data.seed)
    good = tmp / "chips_original"
    summary = chip_catalog(load_catalog(catalog), good, chip_settings(cfg))
    assert summary.chips == 8 and not summary.failed
    chips = tmp / "chips"
    shutil.copytree(good, chips)  # the bad chips are made in a copy; the original stays intact
    ids = pd.read_parquet(chips / "manifest.parquet")["sample_id"].tolist()
    expected: dict[str, str] = {}

    manifest = pd.read_parquet(chips / "manifest.parquet")
    manifest.loc[manifest["sample_id"] == ids[0], "nodata_fraction"] = 0.97  # 3 % valid
    expected[ids[0]] = "chip_valid_fraction"
    manifest.loc[manifest["sample_id"] == ids[1], "location"] = "nowhere"  # not in the catalog
    expected[ids[1]] = "chip_location_accepted"
    manifest.loc[manifest["sample_id"] == ids[2], "offset"] += 8  # points into the record
    expected[ids[2]] = "chip_readable"
    manifest.to_parquet(chips / "manifest.parquet", index=False)

    def add_inf(a: dict[str, np.ndarray]) -> None:
        a["s2"][0, 0, 0, :3] = np.inf

    def sar_plus_40db(a: dict[str, np.ndarray]) -> None:
        a["s1"][0, 0, :2, :2] = 40.0

    _rewrite(chips, ids[4], add_inf)
    expected[ids[4]] = "chip_finite_values"
    _rewrite(chips, ids[5], sar_plus_40db)
    expected[ids[5]] = "chip_value_range"

    out = tmp / "validation"
    report = validate_catalog(catalog, out, cfg.validation, chips_dir=chips, today=TODAY)
    return report, expected, chips, out


def test_bad_chips_are_quarantined_for_their_reason(chip_run) -> None:
    report, expected, _, _ = chip_run
    q = report.quarantine[report.quarantine["kind"] == "chip"].set_index("item_id")
    assert set(q.index) == set(expected)
    for sample_id, check in expected.items():
        assert check in list(q.loc[sample_id, "failed_expectations"]), q.loc[sample_id, "reason"]
    obs = {i: json.loads(q.loc[i, "observed"]) for i in q.index}
    by_check = {check: sample_id for sample_id, check in expected.items()}
    assert obs[by_check["chip_valid_fraction"]]["chip_valid_fraction"][
        "valid_fraction"
    ] == pytest.approx(0.03)
    assert (
        obs[by_check["chip_location_accepted"]]["chip_location_accepted"]["location"] == "nowhere"
    )
    assert "ShardError" in obs[by_check["chip_readable"]]["chip_readable"]["read_error"]
    assert obs[by_check["chip_finite_values"]]["chip_finite_values"]["inf_count"] == 3
    sar = by_check["chip_value_range"]
    assert obs[sar]["chip_value_range"]["s1_max"] == 40
    assert q.loc[sar, "item"] == sar and q.loc[sar, "kind"] == "chip"


def test_good_chips_pass_with_real_values(chip_run) -> None:
    report, expected, _, _ = chip_run
    chips = report.chips.set_index("sample_id")
    good = chips.drop(index=list(expected))
    assert len(good) == 3
    assert good["read_error"].isna().all() and (good["inf_count"] == 0).all()
    assert (good["s2_max"] <= 1.6).all() and (good["s2_min"] >= 0.0).all()  # reflectance
    assert (good["s1_max"] < 10.0).all() and (good["s1_min"] > -50.0).all()  # dB
    assert good["has_s2"].all() and good["has_s1"].all()
    assert (good["n_valid_dates_s2"] >= 3).all() and (good["n_valid_dates_s1"] >= 2).all()
    assert report.summary["chips"] == {"total": 8, "quarantined": 5, "accepted": 3}


def test_chip_outputs_are_written(chip_run) -> None:
    _report, expected, _, out = chip_run
    profiles = pd.read_parquet(out / "chip_profiles.parquet")
    assert len(profiles) == 8 and set(expected) <= set(profiles["sample_id"])
    q = pd.read_parquet(out / "quarantine.parquet")
    assert set(q.loc[q["kind"] == "chip", "item_id"]) == set(expected)
    summary = json.loads((out / "validation.json").read_text())
    assert summary["expectations"]["chips"]["chip_value_range"]["quarantined"] == 1
    assert summary["timings_s"]["profile_chips"] > 0 and summary["timings_s"]["gx_chips"] > 0
    html = "\n".join(p.read_text() for p in (out / "data_docs" / "validations").rglob("*.html"))
    assert "[chip_finite_values, critical]" in html


def test_chip_quarantine_excludes_samples_downstream(chip_run) -> None:
    _, expected, chips, out = chip_run
    q = pd.read_parquet(out / "quarantine.parquet")
    exclude = q.loc[q["kind"] == "chip", "item_id"].tolist()
    everything = ChipDataset(chips, stats=None)
    with pytest.raises(ShardError):  # the damaged record, if not excluded
        for i in range(len(everything)):
            everything[i]
    kept = ChipDataset(chips, stats=None, exclude_ids=exclude)
    assert len(kept) == 3 and not set(kept.ids) & set(expected)
    for i in range(len(kept)):
        sample = kept[i]
        assert np.isfinite(sample["s2"].numpy()).all()
        assert float(sample["s1"].max()) < 10.0
