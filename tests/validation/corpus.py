"""A small catalog of good and deliberately bad GeoTIFFs for the validation tests.

Location ``alpha`` is good (3 S2 dates, 2 S1 dates, DEM, HR) and also carries one bad
acquisition per kind of defect; ``beta`` lacks Sentinel-1; in ``gamma`` S1 only partly overlaps
S2. ``EXPECTED`` maps each bad item to the check that must quarantine it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import yaml
from rasterio.transform import from_origin

S2_PX = 16  # 160 m at 10 m
ORIGIN = (500_000.0, 5_200_000.0)  # EPSG:32632
UTM32 = "EPSG:32632"


def write_tif(
    path: Path,
    data: np.ndarray,
    gsd: float = 10.0,
    crs: str | None = UTM32,
    origin: tuple[float, float] = ORIGIN,
    nodata: float | None = None,
) -> Path:
    """Write a GeoTIFF (bands x rows x cols) with a north-up transform."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count, h, w = data.shape
    profile = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": count,
        "dtype": data.dtype.name,
        "transform": from_origin(origin[0], origin[1], gsd, gsd),
    }
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def s2_data(
    rng: np.random.Generator,
    bands: int = 10,
    px: int = S2_PX,
    dtype: str = "uint16",
    lo: int = 300,
    hi: int = 4000,
) -> np.ndarray:
    """Sentinel-2 DN (reflectance x 1e4)."""
    return rng.integers(lo, hi, (bands, px, px)).astype(dtype)


def s1_data(
    rng: np.random.Generator, px: int = S2_PX, lo: float = -22.0, hi: float = -4.0
) -> np.ndarray:
    """Sentinel-1 VV, VH backscatter in dB."""
    return rng.uniform(lo, hi, (2, px, px)).astype("float32")


def build_corpus(root: Path) -> tuple[Path, dict[str, str]]:
    """Write the corpus under ``root``; return the catalog path and ``{item_id: failing check}``."""
    rng = np.random.default_rng(7)
    r = root / "rasters"
    expected: dict[str, str] = {}

    def s2_acq(name: str, date: str, **kw: object) -> dict:
        data = kw.pop("data", None)
        data = s2_data(rng) if data is None else data
        write_tif(r / f"{name}.tif", data, nodata=0, **kw)
        return {"date": date, "file": f"rasters/{name}.tif", "offset": 0}

    def s1_acq(name: str, date: str, **kw: object) -> dict:
        data = kw.pop("data", None)
        data = s1_data(rng) if data is None else data
        write_tif(r / f"{name}.tif", data, **kw)
        return {"date": date, "file": f"rasters/{name}.tif", "band_names": ["VV", "VH"]}

    # ---- alpha: good acquisitions ------------------------------------------------------
    s2 = [s2_acq(f"alpha_s2_2023060{i}", f"2023-06-0{i}") for i in (1, 2, 3)]
    cloud = np.zeros((1, S2_PX, S2_PX), "uint8")
    cloud[0, :2] = 1  # 12.5 % cloud
    write_tif(r / "alpha_s2_20230601_cloud.tif", cloud)
    s2[0]["mask"] = "rasters/alpha_s2_20230601_cloud.tif"
    s1 = [s1_acq(f"alpha_s1_2023060{i}", f"2023-06-0{i}") for i in (4, 5)]
    dem = write_tif(r / "alpha_dem.tif", rng.uniform(300, 800, (1, S2_PX, S2_PX)).astype("float32"))
    hr = write_tif(
        r / "alpha_hr.tif",
        rng.integers(0, 255, (3, 512, 512)).astype("uint8"),
        gsd=10.0 * S2_PX / 512,
    )

    # ---- alpha: one bad acquisition per defect ----------------------------------------------
    def bad_s2(name: str, check: str, date: str, **kw: object) -> None:
        s2.append(s2_acq(name, date, **kw))
        expected[f"alpha/s2/{len(s2) - 1}/data"] = check

    def bad_s1(name: str, check: str, date: str, **kw: object) -> None:
        s1.append(s1_acq(name, date, **kw))
        expected[f"alpha/s1/{len(s1) - 1}/data"] = check

    bad_s2("truncated", "readable", "2023-07-01")
    raw = (r / "truncated.tif").read_bytes()
    (r / "truncated.tif").write_bytes(raw[: len(raw) // 2])
    s2.append({"date": "2023-07-02", "file": "rasters/not_a_raster.tif", "offset": 0})
    (r / "not_a_raster.tif").write_text("this is a text file, not a GeoTIFF\n")
    expected[f"alpha/s2/{len(s2) - 1}/data"] = "readable"
    bad_s1("no_crs", "crs_set", "2023-07-03", crs=None)
    bad_s1("wrong_crs", "location_overlap", "2023-07-04", crs="EPSG:32633")
    bad_s2("wrong_gsd", "gsd", "2023-07-05", gsd=20.0)
    bad_s2("missing_band", "band_count", "2023-07-06", data=s2_data(rng, bands=9))
    bad_s2("wrong_dtype", "dtype", "2023-07-07", data=(s2_data(rng) * 1e-4).astype("float32"))
    bad_s2(
        "all_nodata", "valid_fraction", "2023-07-08", data=np.zeros((10, S2_PX, S2_PX), "uint16")
    )
    bad_s2("cloudy", "cloud_fraction", "2023-07-09")
    write_tif(r / "cloudy_mask.tif", np.ones((1, S2_PX, S2_PX), "uint8"))
    s2[-1]["mask"] = "rasters/cloudy_mask.tif"
    bad_s2(
        "reflectance_3",
        "value_range",
        "2023-07-10",
        data=np.full((10, S2_PX, S2_PX), 30000, "uint16"),
    )
    bad_s1("sar_plus_40db", "value_range", "2023-07-11", data=s1_data(rng, lo=35.0, hi=40.0))
    nan = s1_data(rng)
    nan[:, :3] = np.nan
    bad_s1("nan_values", "finite_values", "2023-07-12", data=nan)
    bad_s2("future", "date_not_future", "2099-01-01")
    bad_s2("bad_date", "date_parses", "2023-13-45")
    bad_s2("before_window", "date_in_window", "2014-01-01")
    bad_s2("duplicate", "unique_acquisition", "2023-06-02")

    alpha = {
        "id": "alpha",
        "modalities": {
            "s2": {"sensor": "sentinel2", "acquisitions": s2},
            "s1": {"sensor": "sentinel1", "acquisitions": s1},
            "dem": {"sensor": "dem", "acquisitions": [{"file": str(dem.relative_to(root))}]},
            "hr": {
                "sensor": "hr",
                "acquisitions": [{"date": "2023-06-10", "file": str(hr.relative_to(root))}],
            },
        },
    }

    # ---- beta: no Sentinel-1 (required modality missing) ----------------------------
    beta_origin = (600_000.0, 5_100_000.0)
    beta_s2 = []
    for i in (1, 2, 3):
        write_tif(r / f"beta_s2_{i}.tif", s2_data(rng), origin=beta_origin, nodata=0)
        beta_s2.append({"date": f"2023-05-0{i}", "file": f"rasters/beta_s2_{i}.tif", "offset": 0})
    beta = {"id": "beta", "modalities": {"s2": {"sensor": "sentinel2", "acquisitions": beta_s2}}}
    expected["beta"] = "required_modalities"

    # ---- gamma: S1 overlaps S2 only partly (IoU 0.2) ---------------------------------------
    g_origin = (700_000.0, 5_000_000.0)
    shift = (g_origin[0] + 0.6 * S2_PX * 10.0, g_origin[1])  # 60 % to the east: IoU 0.25
    g_s2, g_s1 = [], []
    for i in (1, 2, 3):
        write_tif(r / f"gamma_s2_{i}.tif", s2_data(rng), origin=g_origin, nodata=0)
        g_s2.append({"date": f"2023-08-0{i}", "file": f"rasters/gamma_s2_{i}.tif", "offset": 0})
    for i in (4, 5):
        write_tif(r / f"gamma_s1_{i}.tif", s1_data(rng), origin=shift)
        g_s1.append(
            {
                "date": f"2023-08-0{i}",
                "file": f"rasters/gamma_s1_{i}.tif",
                "band_names": ["VV", "VH"],
            }
        )
    gamma = {
        "id": "gamma",
        "modalities": {
            "s2": {"sensor": "sentinel2", "acquisitions": g_s2},
            "s1": {"sensor": "sentinel1", "acquisitions": g_s1},
        },
    }
    expected["gamma"] = "modalities_overlap"

    catalog = root / "catalog.yaml"
    text = yaml.safe_dump(
        {"version": 1, "name": "corpus", "locations": [alpha, beta, gamma]}, sort_keys=False
    )
    catalog.write_text(text.replace("'2023-13-45'", "2023-13-45"))  # unquoted, as people write it
    return catalog, expected
