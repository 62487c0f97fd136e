"""Downstream sets of the sample (layout, index, arrays) and the EuroSAT / BigEarthNet-MM
readers.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from skysense.config import chip_settings, load_config
from skysense.core.sensors import S2_BANDS, S2_PRODUCT_BANDS
from skysense.data.benchmarks import load_bigearthnet, load_eurosat
from skysense.data.catalog import load_catalog
from skysense.data.downstream import DownstreamError, load_downstream
from skysense.data.synthetic import landcover as lc
from skysense.data.synthetic.downstream import write_index, write_scene_chips
from skysense.data.synthetic.sample import write_sample
from skysense.data.synthetic.scenes import sites_for, synthesize_scene

REAL_BEN = Path(__file__).parent / "real" / "bigearthnet"
SMALL = ["data.sample.locations=1", "data.sample.heldout_locations=1", "data.sample.size_px=32"]
CHIP = load_config(Path(__file__).parents[2] / "params.yaml", SMALL).data.sample.downstream_chip_px
N_CHIPS = (32 // CHIP) ** 2  # chips per 32 px held-out scene


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    small = load_config(Path(__file__).parents[2] / "params.yaml", SMALL)
    write_sample(out, small.data.sample, small.data.seed)
    return out


def read_index(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_index_and_folder_layout(sample: Path) -> None:
    root = sample / "downstream"
    rows = read_index(root / "classification" / "index.csv")
    assert list(rows[0]) == ["sample_id", "class", "class_id", "location", "path", "fraction"]
    assert N_CHIPS * 3 // 4 <= len(rows) <= N_CHIPS and {r["location"] for r in rows} == {
        "fr-camargue"
    }
    for r in rows:
        assert (
            r["path"] == f"{r['class']}/{r['sample_id']}"
            and lc.CLASS_NAMES[int(r["class_id"])] == r["class"]
        )
        assert float(r["fraction"]) >= 0.5
        chip = root / "classification" / r["path"]
        assert sorted(p.name for p in chip.iterdir()) == [
            "dem.tif",
            "hr.tif",
            "s1.tif",
            "s2.tif",
            "s2_cloud.tif",
        ]
        with rasterio.open(chip / "s2.tif") as s2, rasterio.open(chip / "s2_cloud.tif") as cloud:
            dates = s2.tags()["acquisition_dates"].split(",")
            assert (
                len(dates) >= 6
                and dates == sorted(dates)
                and all(dt.date.fromisoformat(d) for d in dates)
            )
            assert s2.count == 10 * len(dates) and s2.nodata == 0 and s2.dtypes[0] == "uint16"
            assert s2.descriptions[:11] == tuple(f"{dates[0]} {b}" for b in S2_BANDS) + (
                f"{dates[1]} B02",
            )
            assert cloud.count == len(dates) and cloud.descriptions == tuple(dates)
        with rasterio.open(chip / "s1.tif") as s1:
            assert (
                s1.count == 2 * len(s1.tags()["acquisition_dates"].split(",")) >= 8
                and s1.nodata == -99
            )
    seg = read_index(root / "segmentation" / "index.csv")
    assert len(seg) == N_CHIPS and {r["sample_id"] for r in rows} <= {r["sample_id"] for r in seg}
    assert all((root / "segmentation" / r["path"] / "mask.tif").exists() for r in seg)


def test_chips_are_georeferenced_windows_of_the_scene(sample: Path) -> None:
    cat = load_catalog(sample / "catalog.yaml")
    loc = cat.location("fr-camargue")
    acq = loc.modalities["s2"].acquisitions[2]
    chip = sample / "downstream" / "segmentation" / "fr-camargue_r016_c000"
    with rasterio.open(cat.resolve(acq.file)) as scene, rasterio.open(chip / "s2.tif") as c:
        assert c.crs == scene.crs and c.shape == (CHIP, CHIP)
        assert (c.transform.c, c.transform.f) == (scene.transform.c, scene.transform.f - 160.0)
        third = c.read(list(range(21, 31)))  # the third date's 10 bands
        assert c.descriptions[20] == f"{acq.date.isoformat()} B02"
        assert np.array_equal(third, scene.read(window=((16, 16 + CHIP), (0, CHIP))))
    with rasterio.open(cat.resolve(loc.labels)) as lab, rasterio.open(chip / "mask.tif") as m:
        assert np.array_equal(m.read(1), lab.read(1)[16 : 16 + CHIP, 0:CHIP])
    with rasterio.open(chip / "hr.tif") as hr:
        assert hr.shape == (32 * CHIP, 32 * CHIP) and hr.res == (0.3125, 0.3125)
        assert (hr.transform.c, hr.transform.f) == (scene.transform.c, scene.transform.f - 160.0)


def test_load_downstream_classification_arrays(sample: Path) -> None:
    samples = load_downstream(sample / "downstream", "classification")
    assert samples.task == "multiclass" and samples.class_names == list(lc.CLASS_NAMES)
    rows = read_index(sample / "downstream" / "classification" / "index.csv")
    for s, r in zip(samples, rows):
        t = s["s2"].shape[0]
        assert s["id"] == r["sample_id"] and int(s["label"]) == int(r["class_id"])
        assert s["s2"].shape == (t, 10, CHIP, CHIP) and s["s2"].dtype == np.float32
        assert 0.0 <= np.nanmin(s["s2"]) and np.nanmax(s["s2"]) < 1.0
        assert (
            s["s2_doy"].dtype == np.int64
            and np.all(np.diff(s["s2_doy"]) > 0)
            and s["s2_valid"].dtype == bool
        )
        assert s["s1"].shape == (s["s1_doy"].size, 2, CHIP, CHIP)
        assert -45 < np.nanmin(s["s1"]) and np.nanmax(s["s1"]) < 15
        assert s["hr"].shape == (4, 32 * CHIP, 32 * CHIP) and s["hr"].dtype == np.uint8
        assert s["dem"].shape == (1, CHIP, CHIP) and np.isfinite(s["dem"]).all()
        assert (
            abs(s["lat"] - 43.58) < 0.01
            and abs(s["lon"] - 4.52) < 0.01
            and isinstance(s["region"], int)
        )


def test_nodata_and_cloud_pixels_are_nan(sample: Path) -> None:
    """NaN exactly where the chip's S2 file has no data or its cloud mask is set, in every band."""
    root = sample / "downstream" / "segmentation"
    seen_cloud = seen_nodata = False
    for s in load_downstream(sample / "downstream", "segmentation"):
        with rasterio.open(root / s["id"] / "s2.tif") as src:
            dn = src.read()
        with rasterio.open(root / s["id"] / "s2_cloud.tif") as src:
            clouds = src.read() == 1
        for t in range(len(s["s2_doy"])):
            nodata = (dn[10 * t : 10 * (t + 1)] == 0).all(axis=0)
            cloud = clouds[t]
            bad = np.isnan(s["s2"][t])
            assert (bad == (nodata | cloud)[None]).all()
            seen_cloud |= bool(cloud.any())
            seen_nodata |= bool(nodata.any())
    assert (
        seen_cloud
    )  # the sample has clouds (and usually swath borders): the check checked something
    assert np.isfinite(s["s1"][s["s1_valid"]]).any()


def test_a_stack_whose_bands_do_not_fit_its_dates_is_a_named_error(
    sample: Path, tmp_path: Path
) -> None:
    from skysense.data.downstream import read_chip

    chip = tmp_path / "chip"
    chip.mkdir()
    src_chip = sample / "downstream" / "segmentation" / "fr-camargue_r000_c000"
    for name in ("s2.tif", "s1.tif", "dem.tif"):
        (chip / name).write_bytes((src_chip / name).read_bytes())
    with rasterio.open(chip / "s2.tif", "r+") as dst:
        dates = dst.tags()["acquisition_dates"].split(",")
        dst.update_tags(acquisition_dates=",".join(dates[:-1]))
    with pytest.raises(DownstreamError, match=r"s2.tif: \d+ bands for \d+ dates"):
        read_chip(chip)


def test_downstream_chip_reaches_the_encoder_as_the_same_shard_chip(
    sample: Path, tmp_path: Path
) -> None:
    """Evaluation input = pre-training input: a downstream chip and the chipper's chip of the same
    window of the held-out scene give the same normalised batch (clouds and nodata at the band
    mean in both), the same valid dates and the same days of year.
    """
    from skysense.data.chipping import chip_catalog
    from skysense.data.dataset import ChipDataset, collate_samples
    from skysense.evaluation.features import samples_to_batch

    cfg = load_config(Path(__file__).parents[2] / "params.yaml", SMALL + [f"data.chip.size={CHIP}"])
    chip_catalog(load_catalog(sample / "catalog.yaml"), tmp_path / "chips", chip_settings(cfg))
    shards = ChipDataset(tmp_path / "chips", split="heldout", n_regions=64)  # sensor default stats
    by_id = {sid: i for i, sid in enumerate(shards.ids)}
    compared = 0
    for s in load_downstream(sample / "downstream", "segmentation", n_regions=64):
        loc, r, c = s["id"].rsplit("_", 2)
        sid = f"{loc}_{int(r[1:]) // CHIP:04d}_{int(c[1:]) // CHIP:04d}"
        if sid not in by_id:  # chips over the nodata limit are not in the shards
            continue
        shard = collate_samples([shards[by_id[sid]]])
        down = samples_to_batch([s], None, ["hr", "s2", "s1", "dem"])  # the same defaults
        for key in ("s2", "s1"):
            assert torch.equal(down[f"{key}_doy"], shard[f"{key}_doy"])
            assert torch.equal(down[f"{key}_valid"], shard[f"{key}_valid"])
            valid = shard[f"{key}_valid"][0]
            torch.testing.assert_close(down[key][0, valid], shard[key][0, valid], rtol=0, atol=1e-4)
        torch.testing.assert_close(down["dem"], shard["dem"], rtol=0, atol=1e-3)
        torch.testing.assert_close(down["hr"], shard["hr"], rtol=0, atol=1e-4)
        compared += 1
    assert compared >= N_CHIPS // 2


def test_load_downstream_segmentation_masks(sample: Path) -> None:
    samples = load_downstream(sample / "downstream", "segmentation")
    assert samples.task == "segmentation" and len(samples) == N_CHIPS
    for s in samples:
        assert s["mask"].shape == (CHIP, CHIP) and s["mask"].dtype == np.int64
        assert set(np.unique(s["mask"])) <= set(range(lc.N_CLASSES))


def test_every_class_gets_chips_in_the_default_heldout_scenes(tmp_path: Path) -> None:
    cfg = load_config(Path(__file__).parents[2] / "params.yaml").data.sample
    assert cfg.heldout_locations >= 4  # leave-location-out probes need several places
    sites = sites_for(0, cfg.heldout_locations)
    scenes = [synthesize_scene(site, split, i, cfg, 0) for i, (site, split) in enumerate(sites)]
    rows = [write_scene_chips(scene, tmp_path, cfg.downstream_chip_px) for scene in scenes]
    counts = write_index(
        tmp_path, [r for cls, _ in rows for r in cls], [r for _, seg in rows for r in seg]
    )
    per_scene = (cfg.size_px // cfg.downstream_chip_px) ** 2
    assert counts["segmentation"] == per_scene * len(scenes)
    assert counts["classification"] >= 0.8 * per_scene * len(scenes)  # chips with a majority class
    rows = read_index(tmp_path / "classification" / "index.csv")
    per_class = {c: sum(r["class"] == c for r in rows) for c in lc.CLASS_NAMES}
    assert min(per_class.values()) >= 4, per_class  # the classes with fewer blocks vary by place
    assert len({r["location"] for r in rows}) == len(scenes)


def test_missing_or_unknown_set_is_a_named_error(tmp_path: Path, sample: Path) -> None:
    with pytest.raises(DownstreamError, match="index.csv: not found"):
        load_downstream(tmp_path, "classification")
    with pytest.raises(DownstreamError, match="unknown downstream set"):
        load_downstream(sample / "downstream", "detection")  # type: ignore[arg-type]


def test_bigearthnet_mm_real_pairs() -> None:
    samples = load_bigearthnet(REAL_BEN)
    assert samples.task == "multilabel"
    assert samples.class_names == [
        "Land principally occupied by agriculture, with significant areas of natural vegetation",
        "Non-irrigated arable land",
        "Pastures",
    ]
    by_id = {s["id"]: s for s in samples}
    s = by_id["S2A_MSIL2A_20170613T101031_87_48"]
    assert s["label"].tolist() == [1.0, 1.0, 0.0]
    assert by_id["S2A_MSIL2A_20170617T113321_4_55"]["label"].tolist() == [0.0, 0.0, 1.0]
    assert s["s2"].shape == (1, 10, 120, 120) and s["s1"].shape == (1, 2, 120, 120)
    assert s["s2_doy"].tolist() == [164] and s["s1_doy"].tolist() == [164] and s["s1_valid"].all()
    folder = REAL_BEN / s["id"]
    with (
        rasterio.open(folder / f"{s['id']}_B02.tif") as b02,
        rasterio.open(folder / f"{s['id']}_B05.tif") as b05,
    ):
        assert np.array_equal(s["s2"][0, 0], b02.read(1).astype(np.float32) * np.float32(1e-4))
        src20 = b05.read(1).astype(np.float64) * 1e-4
    # B05 (20 m) resampled to 10 m keeps its mean and its 2x2 block averages
    b05_10 = s["s2"][0, 3].astype(np.float64)
    assert b05_10.mean() == pytest.approx(src20.mean(), rel=0.02)
    blocks = b05_10.reshape(60, 2, 60, 2).mean(axis=(1, 3))
    assert np.corrcoef(blocks.ravel(), src20.ravel())[0, 1] > 0.95
    with rasterio.open(next((REAL_BEN).glob("S1A*87_48/*_VV.tif"))) as vv:
        assert np.allclose(s["s1"][0, 0], vv.read(1))
    assert 48.0 < s["lat"] < 48.5 and 13.5 < s["lon"] < 14.0


def test_eurosat_layout_from_real_bands(tmp_path: Path) -> None:
    """A EuroSAT-MS folder built from real BigEarthNet bands (13 bands, 64 x 64 at 10 m)."""
    names = list(S2_PRODUCT_BANDS)
    pid = "S2A_MSIL2A_20170613T101031_87_48"
    stack = []
    for b in names:
        f = REAL_BEN / pid / f"{pid}_{'B09' if b == 'B10' else b}.tif"
        with rasterio.open(f) as src:
            k = 120 // src.width
            stack.append(np.repeat(np.repeat(src.read(1), k, 0), k, 1)[:64, :64])
        crs = src.crs
    data = np.stack(stack).astype(np.uint16)
    for cls, off in (("AnnualCrop", 0), ("Pasture", 1)):
        (tmp_path / cls).mkdir()
        with rasterio.open(
            tmp_path / cls / f"{cls}_1.tif",
            "w",
            driver="GTiff",
            width=64,
            height=64,
            count=13,
            dtype="uint16",
            crs=crs,
            transform=from_origin(404400.0, 5342400.0, 10, 10),
        ) as dst:
            dst.write(data + off)
    samples = load_eurosat(tmp_path)
    assert samples.class_names == ["AnnualCrop", "Pasture"] and [
        int(s["label"]) for s in samples
    ] == [0, 1]
    s = samples[0]
    assert s["s2"].shape == (1, 10, 64, 64) and s["s2_doy"].tolist() == [182]
    assert np.allclose(s["s2"][0, 8], data[11] * 1e-4) and np.allclose(
        s["s2"][0, 0], data[1] * 1e-4
    )
    (tmp_path / "Bad").mkdir()
    with rasterio.open(
        tmp_path / "Bad" / "rgb.tif",
        "w",
        driver="GTiff",
        width=8,
        height=8,
        count=3,
        dtype="uint8",
        crs=crs,
        transform=from_origin(0, 0, 10, 10),
    ) as dst:
        dst.write(np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(DownstreamError, match="EuroSAT-MS has 13"):
        load_eurosat(tmp_path)


def test_bigearthnet_without_patches_is_a_named_error(tmp_path: Path) -> None:
    (tmp_path / "x_labels_metadata.json").write_text(json.dumps({"labels": []}))
    with pytest.raises(DownstreamError, match="no BigEarthNet S2 patch"):
        load_bigearthnet(tmp_path)
