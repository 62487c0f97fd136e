"""Chipping: aligned chips in shards, manifest contract, skipped chips, failing locations, stats,
CLI.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from typer.testing import CliRunner

from skysense.data.catalog import Acquisition, Catalog, Location, ModalityEntry, save_catalog
from skysense.data.chipping import MANIFEST_COLUMNS, chip_catalog, chip_location, merge_manifests
from skysense.data.shards import ShardReader
from skysense.data.stats import compute_stats

INTERFACES = Path(__file__).resolve().parents[2] / "docs" / "interfaces.md"


def test_manifest_columns_are_the_documented_ones() -> None:
    text = INTERFACES.read_text()
    section = text[text.index("## Chip manifest") : text.index("Read raw arrays")]
    documented: list[str] = []
    for token in re.findall(r"`([a-z0-9_ ]+)`", section):
        documented.extend(token.split())
    documented = [c for c in documented if c not in ("pretrain", "heldout")]
    assert documented == MANIFEST_COLUMNS


def test_chip_catalog_values_layout_and_manifest(synthetic_chips) -> None:
    cat, chips = synthetic_chips
    df = pd.read_parquet(chips / "manifest.parquet")
    assert list(df.columns) == MANIFEST_COLUMNS
    assert len(df) == 18 and sorted(p.name for p in chips.glob("*.bin")) == ["shard-00000.bin"]
    row = df.set_index("sample_id").loc["loc-a_0001_0002"]
    assert (row.minx, row.maxy, row.maxx, row.miny) == (464320.0, 5249840.0, 464480.0, 5249680.0)
    assert row.crs == "EPSG:32632" and row.region == 3553 and abs(row.lat - 47.40) < 0.01
    assert list(row.s2_dates) == ["2023-03-01", "2023-04-01", "2023-05-01"] and all(row.s2_valid)
    assert row.has_hr and row.hr_date == "2023-06-01" and row.nodata_fraction == 0.0
    arrays = ShardReader(chips).read("loc-a_0001_0002")
    with rasterio.open(cat.root / "loc-a" / "s2_1.tif") as ds:
        src = ds.read(window=((16, 32), (32, 48)))
    np.testing.assert_allclose(arrays["s2"][1], src * np.float32(1e-4), rtol=1e-6)
    with rasterio.open(cat.root / "loc-a" / "s1_0.tif") as ds:
        np.testing.assert_array_equal(arrays["s1"][0], ds.read(window=((16, 32), (32, 48))))
    assert arrays["hr"].shape == (4, 512, 512) and arrays["hr"].dtype == np.uint8
    with rasterio.open(cat.root / "loc-a" / "hr.tif") as ds:  # 1.25 m -> 0.3125 m, bilinear
        src_hr = ds.read(window=((128, 256), (256, 384)))
    np.testing.assert_allclose(
        arrays["hr"].reshape(4, -1).mean(1), src_hr.reshape(4, -1).mean(1), rtol=0.01
    )
    assert arrays["dem"].shape == (1, 16, 16) and arrays["s2_mask"].dtype == bool
    b = df.set_index("sample_id").loc["loc-b_0000_0000"]
    assert not b.has_hr and pd.isna(b.hr_date) and len(b.s2_dates) == 2


def test_skipped_chips_invalid_dates_and_max_dates(
    tmp_path: Path, location_factory, settings_factory, tif
) -> None:
    root = tmp_path / "scenes"
    loc = location_factory(root, "half", s2_dates=4, hr=False)
    with rasterio.open(
        root / "half" / "s2_0.tif", "r+"
    ) as ds:  # left third: no data in every S2 date
        pass
    for t in range(4):
        path = root / "half" / f"s2_{t}.tif"
        with rasterio.open(path, "r+") as ds:
            data = ds.read()
            data[:, :, :16] = 0
            if t == 2:
                data[:, :, 16:32] = 0  # the middle column of chips loses one date
            ds.write(data)
    for t in range(2):
        path = root / "half" / f"s1_{t}.tif"
        with rasterio.open(path, "r+") as ds:
            data = ds.read()
            data[:, :, :16] = -99
            ds.write(data)
    summary = chip_catalog(
        Catalog(locations=[loc], root=root),
        tmp_path / "chips",
        settings=settings_factory(max_dates={"s2": 3, "s1": 6}),
    )
    assert summary.chips == 6 and summary.failed == {}
    assert summary.skipped == {
        "s2_over_nodata_limit": 3,
        "s1_over_nodata_limit": 3,
        "chip_over_nodata_limit": 3,
    }
    df = pd.read_parquet(tmp_path / "chips" / "manifest.parquet").set_index("sample_id")
    mid = df.loc["half_0000_0001"]
    assert list(mid.s2_dates) == ["2023-03-01", "2023-04-01", "2023-06-01"] and all(mid.s2_valid)
    right = df.loc["half_0000_0002"]
    assert list(right.s2_dates) == [
        "2023-03-01",
        "2023-05-01",
        "2023-06-01",
    ]  # 4 usable, 3 kept, spread
    assert summary.invalid_dates["s2"] == 3 * 4 + 3  # left chips: 4 dates each; middle: 1


def _bad_catalog(root: Path, location_factory, tif) -> Catalog:
    good = location_factory(root, "good", seed=3, hr=False)
    locs = [good]

    def with_s2(loc_id: str, acq: Acquisition) -> Location:
        base = location_factory(root, loc_id, seed=4, hr=False, dem=False)
        mods = dict(base.modalities)
        mods["s2"] = ModalityEntry(sensor="sentinel2", acquisitions=[acq])
        return Location(id=loc_id, modalities=mods)

    trunc = tif(
        root / "bad" / "trunc.tif",
        np.random.default_rng(0).integers(1, 9999, (10, 48, 48), dtype=np.uint16),
    )
    trunc.write_bytes(trunc.read_bytes()[: trunc.stat().st_size // 2])
    locs.append(with_s2("truncated", Acquisition(date=dt.date(2023, 3, 1), file=trunc, offset=0.0)))
    text = root / "bad" / "notes.tif"
    text.write_text("field notes, not a raster\n")
    locs.append(with_s2("text", Acquisition(date=dt.date(2023, 3, 1), file=text, offset=0.0)))
    b02 = tif(root / "bad" / "B02.tif", np.full((1, 48, 48), 900, np.uint16))
    locs.append(
        with_s2(
            "missing-band",
            Acquisition(
                date=dt.date(2023, 3, 1),
                bands={"B02": b02, "B03": root / "bad" / "B03.tif"},
                offset=0.0,
            ),
        )
    )
    nocrs = tif(root / "bad" / "nocrs.tif", np.full((10, 48, 48), 900, np.uint16), crs=None)
    locs.append(with_s2("no-crs", Acquisition(date=dt.date(2023, 3, 1), file=nocrs, offset=0.0)))
    five = tif(root / "bad" / "five.tif", np.full((5, 48, 48), 900, np.uint16))
    locs.append(with_s2("five-bands", Acquisition(date=dt.date(2023, 3, 1), file=five, offset=0.0)))
    empty = tif(root / "bad" / "empty.tif", np.zeros((10, 48, 48), np.uint16))
    base = location_factory(root, "all-nodata", seed=5, hr=False, dem=False)
    locs.append(
        Location(
            id="all-nodata",
            modalities={
                "s2": ModalityEntry(
                    sensor="sentinel2",
                    acquisitions=[Acquisition(date=dt.date(2023, 3, 1), file=empty, offset=0.0)],
                ),
                "dem": ModalityEntry(
                    sensor="dem",
                    acquisitions=[
                        Acquisition(
                            file=tif(
                                root / "bad" / "dem.tif",
                                np.ones((1, 16, 16), np.float32) * 400,
                                transform=rasterio.transform.from_origin(464000, 5250000, 30, 30),
                            )
                        )
                    ],
                ),
            },
        )
    )
    del base
    return Catalog(name="bad", locations=locs, root=root)


def test_bad_locations_fail_with_named_errors_and_others_still_chip(
    tmp_path: Path, location_factory, settings_factory, tif
) -> None:
    cat = _bad_catalog(tmp_path / "scenes", location_factory, tif)
    summary = chip_catalog(cat, tmp_path / "chips", settings=settings_factory(workers=2))
    assert summary.chips == 9 and summary.locations == 7
    errors = {
        r["location"]: (r["error_type"], r["error"]) for r in summary.per_location if r["error"]
    }
    assert set(errors) == {
        "truncated",
        "text",
        "missing-band",
        "no-crs",
        "five-bands",
        "all-nodata",
    }
    assert errors["truncated"][0] == "RasterReadError" and re.search(
        r"trunc\.tif.*(truncated|corrupt)", errors["truncated"][1]
    )
    assert (
        errors["text"][0] == "RasterReadError" and "notes.tif: is a text file" in errors["text"][1]
    )
    assert (
        errors["missing-band"][0] == "RasterReadError"
        and "B03.tif: file not found" in errors["missing-band"][1]
    )
    assert (
        errors["no-crs"][0] == "RasterReadError" and "neither a CRS nor GCPs" in errors["no-crs"][1]
    )
    assert (
        errors["five-bands"][0] == "RasterReadError"
        and "has 5 data bands" in errors["five-bands"][1]
    )
    assert (
        errors["all-nodata"][0] == "NoValidDataError"
        and "no valid pixel in s2" in errors["all-nodata"][1]
    )
    df = pd.read_parquet(tmp_path / "chips" / "manifest.parquet")
    assert set(df.location) == {"good"}
    assert json.loads((tmp_path / "chips" / "summary.json").read_text())["failed"].keys() == set(
        errors
    )
    assert not (tmp_path / "chips" / "_parts").exists()


def test_chip_location_then_merge_like_a_fanned_out_flow(
    tmp_path: Path, synthetic_catalog, settings_factory
) -> None:
    out = tmp_path / "chips"
    s = settings_factory(shard_bytes=4 * 2**20)
    results = [
        chip_location(loc, synthetic_catalog.root, out, s, i)
        for i, loc in enumerate(synthetic_catalog.locations)
    ]
    assert [r.chips for r in results] == [9, 9]
    summary = merge_manifests(out, shard_bytes=s.shard_bytes)  # results read back from the parts
    assert summary.chips == 18 and summary.failed == {}
    sizes = [(out / n).stat().st_size for n in summary.shards]
    assert max(sizes) <= 4 * 2**20 and len(sizes) < summary.chips  # ~12.5 MB in few <= 4 MB shards
    again = merge_manifests(out, results) if (out / "_parts").exists() else None
    assert again is None  # the parts are consumed by the merge
    reader = ShardReader(out)
    df = pd.read_parquet(out / "manifest.parquet")
    for sid in df.sample_id[::5]:
        assert reader.read(sid)["s2"].shape[1:] == (10, 16, 16)


def test_stats_from_valid_pixels(synthetic_chips) -> None:
    cat, chips = synthetic_chips
    stats = json.loads((chips / "stats.json").read_text())
    assert stats["chips"] == 18 and stats["s2"]["units"] == "reflectance"
    assert stats["s2"]["bands"][0] == "B02" and stats["hr"]["bands"] == ["R", "G", "B", "N"]
    vals = []
    for loc in cat.locations:
        for acq in loc.modalities["s2"].acquisitions:
            with rasterio.open(cat.resolve(acq.file)) as ds:
                vals.append(ds.read(1).astype(np.float64).ravel() * 1e-4)
    v = np.concatenate(vals)
    assert stats["s2"]["mean"][0] == pytest.approx(v.mean(), rel=1e-5)
    assert stats["s2"]["std"][0] == pytest.approx(v.std(), rel=1e-4)
    assert stats["s2"]["count"][0] == v.size
    assert stats["hr"]["count"][3] > 0 and -25 < stats["s1"]["mean"][0] < 0
    assert compute_stats(chips, split="heldout")["chips"] == 0


def test_cli_chip_and_stats(
    tmp_path: Path, synthetic_catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skysense.cli import app

    # run where there is no ./params.yaml (embedded defaults): the repository's params.yaml is
    # edited by other work at the same time and a half-finished edit must not fail this test
    monkeypatch.chdir(tmp_path)
    cat_file = save_catalog(synthetic_catalog, tmp_path / "catalog.yaml")
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "data",
            "chip",
            "--catalog",
            str(cat_file),
            "--out",
            str(tmp_path / "c"),
            "--set",
            "data.chip.workers=1",
            "--set",
            "data.chip.size=16",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["chips"] == 18 and payload["failed"] == {}
    res = runner.invoke(app, ["data", "stats", "--chips", str(tmp_path / "c"), "--json"])
    assert res.exit_code == 0, res.output
    assert (
        json.loads(res.stdout)["s2"]["bands"][0] == "B02"
        and (tmp_path / "c" / "stats.json").exists()
    )
    res = runner.invoke(
        app,
        ["data", "chip", "--catalog", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "d")],
    )
    flat = " ".join(res.output.split())  # rich wraps long lines
    assert res.exit_code == 2 and "nope.yaml: catalog not found" in flat and "Traceback" not in flat
    res = runner.invoke(app, ["data", "stats", "--chips", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "no chip manifest" in " ".join(res.output.split())
    assert "manifest.parquet" in runner.invoke(app, ["data", "chip", "--help"]).output


def _wide_location(root: Path, tif, cols_px: int = 512) -> Location:
    """A 16 x ``cols_px`` px (10 m) location with S2, S1 and 1.25 m HR: a wide scene."""
    rng = np.random.default_rng(11)
    t10 = rasterio.transform.from_origin(464000.0, 5250000.0, 10.0, 10.0)
    s2 = tif(
        root / "wide" / "s2.tif",
        rng.integers(200, 5000, (10, 16, cols_px), dtype=np.uint16),
        transform=t10,
    )
    s1 = tif(
        root / "wide" / "s1.tif",
        rng.uniform(-25, 0, (2, 16, cols_px)).astype(np.float32),
        transform=t10,
        nodata=-99.0,
    )
    hr = tif(
        root / "wide" / "hr.tif",
        rng.integers(1, 255, (4, 128, cols_px * 8), dtype=np.uint8),
        transform=rasterio.transform.from_origin(464000.0, 5250000.0, 1.25, 1.25),
        nodata=0,
    )
    return Location(
        id="wide",
        modalities={
            "s2": ModalityEntry(
                sensor="sentinel2",
                acquisitions=[Acquisition(date=dt.date(2023, 4, 1), file=s2, offset=0.0)],
            ),
            "s1": ModalityEntry(
                sensor="sentinel1", acquisitions=[Acquisition(date=dt.date(2023, 4, 2), file=s1)]
            ),
            "hr": ModalityEntry(
                sensor="hr", acquisitions=[Acquisition(date=dt.date(2023, 6, 1), file=hr)]
            ),
        },
    )


def test_strips_split_by_columns_keep_memory_bounded_and_chips_identical(
    tmp_path: Path, tif, settings_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row of chips over a wide raster no longer has to fit in memory (issue #21, item 8).

    With a 4 MB block budget a full-width strip of this scene's HR (256 x 16384 px, 4 bands, plus
    masks) is over 20 MB; blocks of a few chip columns stay within the budget, and the chips are
    byte for byte those of one unsplit read.
    """
    import tracemalloc

    from skysense.data import chipping

    cat = Catalog(
        name="wide", locations=[_wide_location(tmp_path / "scenes", tif)], root=tmp_path / "scenes"
    )
    s = settings_factory(size=8, stride=8)
    whole = chip_catalog(cat, tmp_path / "whole", settings=s)
    assert whole.chips == 2 * 64 and whole.failed == {}
    monkeypatch.setattr(chipping, "STRIP_BUDGET_BYTES", 4 * 2**20)
    tracemalloc.start()
    try:
        part = chip_location(cat.locations[0], cat.root, tmp_path / "split", s)  # reads and cuts
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    split = merge_manifests(tmp_path / "split", [part], s.shard_bytes)
    assert split.chips == whole.chips and split.failed == {}
    assert peak < 12 * 2**20, f"peak {peak / 2**20:.1f} MB with a 4 MB block budget"
    a, b = ShardReader(tmp_path / "whole"), ShardReader(tmp_path / "split")
    assert sorted(a.ids()) == sorted(b.ids())
    for sid in a.ids():
        x, y = a.read(sid), b.read(sid)
        assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x), sid
    cols = pd.read_parquet(tmp_path / "split" / "manifest.parquet").drop(
        columns=["shard", "offset", "nbytes"]
    )
    ref = pd.read_parquet(tmp_path / "whole" / "manifest.parquet").drop(
        columns=["shard", "offset", "nbytes"]
    )
    key = "sample_id"
    pd.testing.assert_frame_equal(
        cols.sort_values(key).reset_index(drop=True), ref.sort_values(key).reset_index(drop=True)
    )


def test_a_location_grid_over_the_pixel_limit_is_a_named_error(
    tmp_path: Path, synthetic_catalog, settings_factory
) -> None:
    from skysense.data.raster_access import RasterAccessPolicy

    s = settings_factory(access=RasterAccessPolicy(max_pixels=48 * 48 - 1))
    summary = chip_catalog(synthetic_catalog, tmp_path / "chips", settings=s)
    assert summary.chips == 0
    errors = {r["location"]: (r["error_type"], r["error"]) for r in summary.per_location}
    assert errors["loc-a"][0] == "RasterTooLargeError"
    assert "data.max_raster_pixels" in errors["loc-a"][1]
