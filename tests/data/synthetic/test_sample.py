"""The synthetic sample: determinism, georeferencing, sensor dtypes/nodata, clouds, classes,
phenology.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform as warp_transform
from typer.testing import CliRunner

from skysense.config import SkySenseConfig, load_config
from skysense.core.geotiff import write_geotiff
from skysense.core.sensors import HR_BANDS, S2_BANDS
from skysense.data.catalog import load_catalog
from skysense.data.synthetic import landcover as lc
from skysense.data.synthetic.sample import SampleWriteError, write_sample
from skysense.data.synthetic.scenes import (
    HELDOUT_SITES,
    PRETRAIN_SITES,
    sites_for,
    synthesize_scene,
    utm_epsg,
)

SMALL = [
    "data.sample.locations=1",
    "data.sample.heldout_locations=1",
    "data.sample.size_px=32",
    "data.sample.s2_dates=8",
    "data.sample.s1_dates=6",
]


def _sample_args(cfg):
    """``write_sample``'s settings and seed from a configuration."""
    return cfg.data.sample, cfg.data.seed


def small_cfg(seed: int = 0, extra: list[str] | None = None) -> SkySenseConfig:
    return load_config(
        Path(__file__).parents[3] / "params.yaml", [*SMALL, f"data.seed={seed}", *(extra or [])]
    )


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    write_sample(out, *_sample_args(small_cfg()))
    return out


def test_same_seed_same_bytes_other_seed_differs(sample: Path, tmp_path: Path) -> None:
    assert small_cfg().data.sample.workers == 2  # the fixture wrote its two places in two processes
    write_sample(tmp_path / "again", *_sample_args(small_cfg(extra=["data.sample.workers=1"])))
    first, again = digest(sample), digest(tmp_path / "again")
    assert first == again and len(first) > 50  # one process or two: the same bytes
    write_sample(tmp_path / "other", *_sample_args(small_cfg(seed=1)))
    other = digest(tmp_path / "other")
    shared = set(first.values()) & set(other.values())  # dates differ, so names differ too
    assert len(shared) < 0.05 * len(first)
    assert first["catalog.yaml"] != other["catalog.yaml"]


def test_catalog_loads_and_every_path_exists(sample: Path) -> None:
    cat = load_catalog(sample / "catalog.yaml")
    assert [loc.split for loc in cat.locations] == ["pretrain", "heldout"]
    for loc in cat.locations:
        assert set(loc.modalities) == {"s2", "s1", "hr", "dem"}
        assert cat.resolve(loc.labels).exists()
        for entry in loc.modalities.values():
            for acq in entry.acquisitions:
                assert all(cat.resolve(p).exists() for p in acq.paths())
        s2 = loc.modalities["s2"].acquisitions
        assert len(s2) >= 6 and all(a.mask is not None for a in s2)
        assert s2[0].band_names == list(S2_BANDS)
        dates = [a.date for a in s2]
        assert dates == sorted(dates) and dates[-1].toordinal() - dates[0].toordinal() > 250


def test_locations_lie_in_their_utm_zone_and_hr_is_32x_finer(sample: Path) -> None:
    cat = load_catalog(sample / "catalog.yaml")
    sites = {s.name: s for s in (*PRETRAIN_SITES, *HELDOUT_SITES)}
    for loc in cat.locations:
        site = sites[loc.id]
        with rasterio.open(cat.resolve(loc.modalities["s2"].acquisitions[0].file)) as s2:
            assert s2.crs.to_epsg() == utm_epsg(site.lat, site.lon)
            assert s2.res == (10.0, 10.0) and s2.shape == (32, 32)
            assert s2.transform.c % 10 == 0 and s2.transform.f % 10 == 0
            lon, lat = warp_transform(
                s2.crs,
                "EPSG:4326",
                [(s2.bounds.left + s2.bounds.right) / 2],
                [(s2.bounds.top + s2.bounds.bottom) / 2],
            )
            assert abs(lat[0] - site.lat) < 0.01 and abs(lon[0] - site.lon) < 0.01
            s2_tr, s2_crs = s2.transform, s2.crs
        with rasterio.open(cat.resolve(loc.modalities["hr"].acquisitions[0].file)) as hr:
            assert hr.crs == s2_crs and hr.shape == (32 * 32, 32 * 32) and hr.count == 4
            assert hr.transform.a == pytest.approx(
                s2_tr.a / 32
            ) and hr.transform.e == pytest.approx(s2_tr.e / 32)
            assert (hr.transform.c, hr.transform.f) == (s2_tr.c, s2_tr.f)
            assert hr.bounds == pytest.approx(tuple(s2.bounds))
        for mod in ("s1", "dem"):
            with rasterio.open(cat.resolve(loc.modalities[mod].acquisitions[0].file)) as src:
                assert src.transform == s2_tr and src.crs == s2_crs
    assert {utm_epsg(s.lat, s.lon) for s in (*PRETRAIN_SITES, *HELDOUT_SITES)} == {
        32630,
        32631,
        32632,
        32633,
    }


def test_dtypes_nodata_and_value_ranges(sample: Path) -> None:
    cat = load_catalog(sample / "catalog.yaml")
    edges = {"s2": 0, "s1": 0}
    for loc in cat.locations:
        for acq in loc.modalities["s2"].acquisitions:
            with rasterio.open(cat.resolve(acq.file)) as src:
                assert src.dtypes == ("uint16",) * 10 and src.nodata == 0
                assert src.block_shapes[0] == (32, 32)  # one 32 x 32 tile, not strips
                assert src.compression is not None and src.descriptions[6] == "B08"
                dn = src.read()
            valid = dn[:, (dn > 0).all(axis=0)]
            assert 0.0 < valid.min() * 1e-4 and valid.max() * 1e-4 < 1.0
            edges["s2"] += int((dn == 0).all(axis=0).any())
        for acq in loc.modalities["s1"].acquisitions:
            with rasterio.open(cat.resolve(acq.file)) as src:
                assert src.dtypes == ("float32", "float32") and src.nodata == -99.0
                db = src.read()
            ok = db[:, (db != -99.0).all(axis=0)]
            assert -45 < ok.min() and ok.max() < 15 and 0.5 < ok.std()  # speckled dB
            edges["s1"] += int((db == -99.0).any())
        with rasterio.open(cat.resolve(loc.modalities["hr"].acquisitions[0].file)) as src:
            assert src.dtypes == ("uint8",) * 4 and src.read().std() > 5
            assert src.block_shapes[0] == (256, 256)  # tiled
        with rasterio.open(cat.resolve(loc.modalities["dem"].acquisitions[0].file)) as src:
            dem = src.read(1)
            assert src.dtypes == ("float32",) and -10 < dem.min() and dem.max() < 2000
    # swath borders appear on some dates with the default seed
    assert edges["s2"] + edges["s1"] >= 1


def test_hr_jpeg_keeps_its_tables_per_tile_and_decodes_as_the_shared_table_form(
    tmp_path: Path,
) -> None:
    """Lossy HR GeoTIFFs carry their JPEG tables in each tile (no shared JPEGTables tag, whose
    quality GDAL re-guesses at every open): same quality, same decoded pixels.
    """
    hr = np.random.default_rng(0).integers(0, 256, (4, 256, 256), dtype=np.uint8)
    hr[:, :128] = 90  # some flat area as well as noise
    transform = rasterio.transform.from_origin(500_000.0, 4_800_000.0, 0.3125, 0.3125)
    write_geotiff(tmp_path / "hr.tif", hr, 32631, transform, None, list(HR_BANDS), jpeg_quality=90)
    with rasterio.open(tmp_path / "hr.tif") as src:
        assert src.compression.name == "jpeg" and src.descriptions == HR_BANDS
        assert src.tags(ns="IMAGE_STRUCTURE").get("JPEGTABLESMODE") is None  # no shared tables
        ours, profile = src.read(), src.profile
    profile.update(jpeg_quality=90, jpegtablesmode=1)
    with rasterio.open(tmp_path / "shared.tif", "w", **profile) as dst:
        dst.write(hr)
    with rasterio.open(tmp_path / "shared.tif") as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["JPEG_QUALITY"] == "90"
        np.testing.assert_array_equal(src.read(), ours)
    assert 0 < np.abs(ours.astype(int) - hr).max() <= 64  # lossy, at quality 90


def test_cloud_masks_cover_the_bright_pixels() -> None:
    cfg = small_cfg(extra=["data.sample.cloud_probability=1.0"]).data.sample
    site, split = sites_for(1, 1)[0]
    scene = synthesize_scene(site, split, 0, cfg, 0)
    assert scene.s2_cloud.any()
    blue = scene.s2[:, 0].astype(np.float32) * 1e-4
    data = scene.s2[:, 0] > 0
    cloud, clear = (scene.s2_cloud == 1) & data, (scene.s2_cloud == 0) & data
    assert blue[cloud].min() > 0.12 and np.median(blue[clear]) < 0.1
    assert blue[cloud].mean() > 3 * blue[clear].mean()
    # blobs, not salt-and-pepper: most cloud pixels have a cloudy 4-neighbour
    m = scene.s2_cloud.astype(bool)
    neighbours = np.zeros_like(m)
    neighbours[:, 1:] |= m[:, :-1]
    neighbours[:, :-1] |= m[:, 1:]
    assert (m & neighbours).sum() > 0.9 * m.sum()


def test_label_raster_has_parcels_of_every_class(sample: Path) -> None:
    cat = load_catalog(sample / "catalog.yaml")
    with rasterio.open(cat.resolve(cat.location("fr-camargue").labels)) as src:
        labels = src.read(1)
        assert src.dtypes == ("uint8",) and src.nodata == 255
        assert src.tags()["class_3"] == "forest"
    assert set(np.unique(labels)) <= set(range(lc.N_CLASSES))
    assert len(np.unique(labels)) >= 4  # 4 blocks of 16 px, each a different class
    same_right = (labels[:, 1:] == labels[:, :-1]).mean()
    assert same_right > 0.85  # spatially coherent parcels


def test_winter_cereal_greens_up_before_maize() -> None:
    """NDVI over the year: winter cereal peaks in spring, maize in summer (cloud-free model)."""
    doy = np.arange(1, 366, 7)
    ids = np.array(
        [lc.class_id("winter_cereal"), lc.class_id("summer_maize"), lc.class_id("grassland")]
    )
    traits = lc.ParcelTraits.draw(np.random.default_rng(0), 3, 0.0)
    nd = lc.ndvi(lc.reflectance(lc.fractions(ids, doy, traits), np.ones(3, np.float32)))
    peak = doy[nd.argmax(axis=0)]
    assert 110 < peak[0] < 170 and 190 < peak[1] < 250
    # similar annual means, different timing
    assert abs(nd[:, 0].mean() - nd[:, 1].mean()) < 0.15


def test_phenology_in_the_sentinel2_series() -> None:
    """Median NDVI of clear winter-cereal pixels peaks at an earlier date than maize's."""
    cfg = small_cfg(extra=["data.sample.size_px=64"]).data.sample
    scene = synthesize_scene(*sites_for(0, 1)[0], 0, cfg, 0)
    refl = scene.s2.astype(np.float32) * 1e-4
    nd = lc.ndvi(refl, band_axis=1)
    ok = (scene.s2_cloud == 0) & (scene.s2 > 0).all(axis=1)
    doy = np.array([d.timetuple().tm_yday for d in scene.s2_dates])
    peak = {}
    for cid in (lc.class_id("winter_cereal"), lc.class_id("summer_maize")):
        med = np.array(
            [
                np.median(nd[t][ok[t] & (scene.labels == cid)])
                if (ok[t] & (scene.labels == cid)).sum() > 10
                else -1.0
                for t in range(len(doy))
            ]
        )
        peak[cid] = doy[med.argmax()]
    assert peak[lc.class_id("winter_cereal")] < peak[lc.class_id("summer_maize")]


def test_sar_backscatter_follows_the_classes() -> None:
    # 64 px = 16 blocks: a balanced held-out scene has every class (32 px has 4 random ones)
    scene = synthesize_scene(
        *sites_for(0, 1)[0], 0, small_cfg(extra=["data.sample.size_px=64"]).data.sample, 0
    )
    vv = np.where(scene.s1 == -99.0, np.nan, scene.s1)
    mean_vv = {c: np.nanmean(vv[:, 0][:, scene.labels == c]) for c in np.unique(scene.labels)}
    water, urban = lc.class_id("water"), lc.class_id("urban_dense")
    assert mean_vv[water] < -17 and mean_vv[urban] > -6


def test_cli_writes_sample_and_reports_json(tmp_path: Path) -> None:
    from skysense.cli import app

    res = CliRunner().invoke(
        app,
        [
            "data",
            "sample",
            "--out",
            str(tmp_path / "s"),
            "--json",
            *[a for s in SMALL for a in ("--set", s)],
        ],
    )
    assert res.exit_code == 0, res.output
    assert '"locations": 2' in res.output and (tmp_path / "s" / "catalog.yaml").exists()
    (tmp_path / "file").write_text("x")
    res = CliRunner().invoke(app, ["data", "sample", "--out", str(tmp_path / "file")])
    assert res.exit_code == 2 and "not a folder" in res.output


def test_out_dir_that_is_a_file_is_a_named_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(SampleWriteError, match="not a folder"):
        write_sample(tmp_path / "f", *_sample_args(small_cfg()))
