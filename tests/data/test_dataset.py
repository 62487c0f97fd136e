"""ChipDataset and collate_samples over real shards: values, padding, workers, distributed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from skysense.data.dataset import ChipDataset, collate_samples, day_of_year
from skysense.data.regions import region_id
from skysense.data.shards import ShardError, ShardReader


def test_sample_dict_values_and_normalisation(synthetic_chips) -> None:
    _, chips = synthetic_chips
    ds = ChipDataset(chips, n_regions=256)
    assert len(ds) == 18
    i = ds.ids.index("loc-a_0001_0002")
    s = ds[i]
    assert s["hr"].shape == (4, 512, 512) and s["s2"].shape == (3, 10, 16, 16)
    assert s["s1"].shape == (2, 2, 16, 16) and s["dem"].shape == (1, 16, 16)
    assert s["s2"].dtype == torch.float32 and s["hr"].dtype == torch.float32
    assert s["s2_doy"].tolist() == [60, 91, 121] and s["s2_valid"].tolist() == [True] * 3
    assert s["s1_doy"].tolist() == [64, 95]
    assert (
        int(s["region"]) == region_id(s["lat"], s["lon"], 256) and s["region"].dtype == torch.int64
    )
    stats = json.loads((chips / "stats.json").read_text())
    raw = ShardReader(chips).read("loc-a_0001_0002")
    expect = (raw["s2"][2, 4, 5, 6] - stats["s2"]["mean"][4]) / stats["s2"]["std"][4]
    assert float(s["s2"][2, 4, 5, 6]) == pytest.approx(expect, rel=1e-5)
    expect_hr = (raw["hr"][1, 100, 7] - stats["hr"]["mean"][1]) / stats["hr"]["std"][1]
    assert float(s["hr"][1, 100, 7]) == pytest.approx(expect_hr, rel=1e-5)
    flat = s["s2"].reshape(-1, 10, 256).permute(1, 0, 2).reshape(10, -1)
    assert abs(float(flat.mean())) < 0.2  # roughly centred by stats.json
    assert "hr" not in ds[ds.ids.index("loc-b_0000_0000")]  # a missing modality is a missing key
    phys = ChipDataset(chips, stats=None)[i]
    np.testing.assert_allclose(phys["s2"].numpy(), raw["s2"])


def test_collate_pads_series_and_missing_modalities(synthetic_chips) -> None:
    _, chips = synthetic_chips
    ds = ChipDataset(chips, modalities=["hr", "s2", "s1"])
    a = ds[ds.ids.index("loc-a_0000_0000")]
    b = ds[ds.ids.index("loc-b_0002_0002")]
    batch = collate_samples([a, b])
    assert batch["ids"] == ["loc-a_0000_0000", "loc-b_0002_0002"]
    assert batch["s2"].shape == (2, 3, 10, 16, 16) and batch["s1"].shape == (2, 2, 2, 16, 16)
    assert batch["s2_doy"].tolist() == [[60, 91, 121], [60, 91, 0]]
    assert batch["s2_valid"].tolist() == [[True, True, True], [True, True, False]]
    assert torch.equal(batch["s2"][1, 2], torch.zeros(10, 16, 16))
    assert batch["has_hr"].tolist() == [True, False] and batch["hr"].shape == (2, 4, 512, 512)
    assert torch.equal(batch["hr"][1], torch.zeros(4, 512, 512))
    assert "dem" not in batch and "has_dem" not in batch  # missing for all -> missing key
    assert batch["region"].dtype == torch.int64 and batch["lat"].shape == (2,)


def test_dataloader_with_workers_and_distributed_sampler(synthetic_chips) -> None:
    _, chips = synthetic_chips
    ds = ChipDataset(
        chips, exclude_ids=["loc-a_0000_0000", "loc-a_0000_0001"], modalities=["s2", "s1", "dem"]
    )
    assert len(ds) == 16
    seen: list[str] = []
    for rank in (0, 1):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        loader = DataLoader(
            ds, batch_size=3, sampler=sampler, num_workers=2, collate_fn=collate_samples
        )
        for batch in loader:
            assert batch["s2"].shape[1:] == (3, 10, 16, 16) or batch["s2"].shape[1] == 2
            seen.extend(batch["ids"])
    assert sorted(seen) == sorted(ds.ids)


def test_opening_reads_only_the_manifest(synthetic_chips, tmp_path: Path) -> None:
    _, chips = synthetic_chips
    copy = tmp_path / "chips"
    copy.mkdir()
    shutil.copy2(chips / "manifest.parquet", copy / "manifest.parquet")  # no shard at all
    ds = ChipDataset(copy)
    assert len(ds) == 18 and ds.reader._files == {}
    with pytest.raises(ShardError, match=r"shard-00000\.bin: shard missing"):
        ds[0]
    with pytest.raises(ShardError, match="no chip manifest"):
        ChipDataset(tmp_path / "nothing")


def test_day_of_year() -> None:
    assert day_of_year(["2023-01-01", "2024-12-31", None]).tolist() == [1, 366, 0]
