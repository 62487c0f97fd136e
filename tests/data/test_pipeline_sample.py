"""End to end on the bundled sample: write_sample -> chip_catalog -> stats -> ChipDataset -> batch.

Small (2 locations of 32 x 32 Sentinel pixels, 16 px chips) but every real piece runs: the
synthetic GeoTIFFs, the aligned reads, the process pool, shards, manifest, stats and the batch
contract of docs/interfaces.md.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
import torch

from skysense.config import SkySenseConfig, chip_settings, load_config
from skysense.data.catalog import load_catalog
from skysense.data.chipping import chip_catalog
from skysense.data.coregistration import LocationReader, location_grid
from skysense.data.dataset import ChipDataset, collate_samples
from skysense.data.shards import ShardReader
from skysense.data.stats import compute_stats, write_stats
from skysense.data.synthetic.sample import write_sample

S, T2, T1 = 16, 4, 3
OVERRIDES = [
    "data.sample.locations=1",
    "data.sample.heldout_locations=1",
    "data.sample.size_px=32",
    f"data.sample.s2_dates={T2}",
    f"data.sample.s1_dates={T1}",
    f"data.max_dates.s2={T2}",
    f"data.max_dates.s1={T1}",
    f"data.chip.size={S}",
    "data.chip.workers=2",
]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("pipeline")
    # the embedded defaults, not the repository's params.yaml (edited concurrently by other work);
    # a params file names every section (skysense/core/params_file.py): each empty takes its
    # defaults
    (root / "params.yaml").write_text("".join(f"{s}: {{}}\n" for s in SkySenseConfig.model_fields))
    cfg = load_config(root / "params.yaml", OVERRIDES)
    catalog = load_catalog(write_sample(root / "sample", cfg.data.sample, cfg.data.seed))
    summary = chip_catalog(catalog, root / "chips", chip_settings(cfg))
    stats = compute_stats(root / "chips", split="pretrain")
    write_stats(root / "chips", stats)
    return cfg, catalog, summary, stats, root / "chips"


def test_sample_sources_take_the_warper_free_path(pipeline) -> None:
    _, catalog, *_ = pipeline
    loc = catalog.locations[0]
    grid = location_grid(loc, catalog.root)
    with LocationReader(loc, catalog.root, grid, 32) as reader:
        for mod, entries in reader.readers.items():
            for _, acq_reader in entries:
                assert all(
                    layer.align is not None and layer.vrt is None for layer in acq_reader.layers
                ), mod
                if acq_reader._mask_vrt is not None:  # S2 cloud masks
                    assert acq_reader._mask_vrt[2] is not None


def test_chips_manifest_and_values_at_map_coordinates(pipeline) -> None:
    _, catalog, summary, _, chips = pipeline
    assert summary.failed == {} and summary.locations == 2
    df = pq.read_table(chips / "manifest.parquet").to_pandas()
    assert summary.chips == len(df) > 0 and set(df["split"]) == {"pretrain", "heldout"}
    assert (df["size"] == S).all() and df["has_s2"].all()
    # S2 of a chip equals the source GeoTIFF pixel at the same map coordinate (x 1e-4)
    row = df.iloc[0]
    loc = next(lc for lc in catalog.locations if lc.id == row["location"])
    arrays = ShardReader(chips).read(row["sample_id"])
    assert arrays["s2"].shape[1:] == (10, S, S) and arrays["hr"].shape == (4, 32 * S, 32 * S)
    acq = next(
        a for a in loc.modalities["s2"].acquisitions if a.date.isoformat() == row["s2_dates"][0]
    )
    with rasterio.open(catalog.root / acq.file) as ds:
        for r, c in [(0, 0), (7, 11), (S - 1, S - 1)]:
            x, y = row["minx"] + (c + 0.5) * 10.0, row["maxy"] - (r + 0.5) * 10.0
            sr, sc = ds.index(x, y)
            src = ds.read(1, window=((sr, sr + 1), (sc, sc + 1)))[0, 0]
            if arrays["s2_mask"][0, r, c]:
                assert arrays["s2"][0, 0, r, c] == pytest.approx(src * 1e-4, rel=1e-6)


def test_batch_matches_the_interface_contract(pipeline) -> None:
    _, _, _, stats, chips = pipeline
    ds = ChipDataset(chips, split="pretrain")
    assert len(ds) == int(
        (pq.read_table(chips / "manifest.parquet").to_pandas()["split"] == "pretrain").sum()
    )
    batch = collate_samples([ds[i] for i in range(len(ds))])
    b = len(ds)
    assert batch["hr"].shape == (b, 4, 32 * S, 32 * S) and batch["hr"].dtype == torch.float32
    assert batch["s2"].shape == (b, T2, 10, S, S) and batch["s1"].shape == (b, T1, 2, S, S)
    assert batch["dem"].shape == (b, 1, S, S)
    for mod, t in (("s2", T2), ("s1", T1)):
        doy, valid = batch[f"{mod}_doy"], batch[f"{mod}_valid"]
        assert doy.shape == valid.shape == (b, t) and valid.dtype == torch.bool
        assert ((doy >= 1) & (doy <= 366)).all()
        assert (doy.diff(dim=1) > 0).all()  # dates in time order within a year
    assert batch["has_s2"].all() and batch["region"].dtype == torch.int64
    for key in ("hr", "s2", "s1", "dem", "lat", "lon"):
        assert torch.isfinite(batch[key]).all(), key
    # S2 normalised with stats.json: over the valid pretrain pixels, mean 0 and std 1 per band
    reader = ShardReader(chips)
    masks = np.stack([reader.read(sid)["s2_mask"] for sid in batch["ids"]])  # B x T x S x S
    x = batch["s2"].numpy().transpose(2, 0, 1, 3, 4)[:, masks]  # bands x valid pixels
    assert x.shape[1] == sum(stats["s2"]["count"]) // 10
    np.testing.assert_allclose(x.mean(axis=1), 0.0, atol=1e-3)
    np.testing.assert_allclose(x.std(axis=1), 1.0, rtol=1e-3)
    assert (batch["s2"].numpy().transpose(2, 0, 1, 3, 4)[:, ~masks] == 0).all()
