"""Fixtures of the data-layer tests: tiny GeoTIFFs written with rasterio, and the real crops."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from skysense.data.catalog import Acquisition, Catalog, Location, ModalityEntry

REAL = Path(__file__).parent / "real"
SHARED_REAL = Path("/work/shared/data/real")
UTM32 = CRS.from_epsg(32632)  # Zurich area


def write_tif(
    path: Path,
    data: np.ndarray,
    crs: CRS | None = UTM32,
    transform=None,
    nodata: float | None = None,
    alpha: np.ndarray | None = None,
) -> Path:
    """Write a C x H x W (or H x W) array as a GeoTIFF; ``alpha`` adds an alpha band."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = data if data.ndim == 3 else data[None]
    count = arr.shape[0] + (1 if alpha is not None else 0)
    profile = dict(
        driver="GTiff",
        width=arr.shape[2],
        height=arr.shape[1],
        count=count,
        dtype=str(arr.dtype),
        nodata=nodata,
    )
    if crs is not None:
        profile.update(crs=crs, transform=transform or from_origin(464000.0, 5250000.0, 10.0, 10.0))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr, indexes=list(range(1, arr.shape[0] + 1)))
        ci = [rasterio.enums.ColorInterp.gray] + [rasterio.enums.ColorInterp.undefined] * (
            count - 1
        )
        if alpha is not None:
            dst.write(alpha.astype(arr.dtype), count)
            ci[-1] = rasterio.enums.ColorInterp.alpha
        dst.colorinterp = ci
    return path


@pytest.fixture
def tif() -> Callable[..., Path]:
    """The :func:`write_tif` writer."""
    return write_tif


@pytest.fixture
def real() -> Path:
    """Folder of the small real rasters copied for tests (see tests/data/PROVENANCE.tsv)."""
    return REAL


def make_location(
    root: Path,
    loc_id: str,
    x0: float = 464000.0,
    y0: float = 5250000.0,
    px: int = 48,
    s2_dates: int = 3,
    s1_dates: int = 2,
    seed: int = 0,
    hr: bool = True,
    dem: bool = True,
    crs: CRS = UTM32,
) -> Location:
    """Write one synthetic multi-modal location (S2 series, S1 series, HR, DEM) and return it."""
    rng = np.random.default_rng(seed)
    mods: dict[str, ModalityEntry] = {}
    t10 = from_origin(x0, y0, 10.0, 10.0)
    s2 = []
    for t in range(s2_dates):
        data = rng.integers(200, 5000, size=(10, px, px), dtype=np.uint16)
        f = write_tif(root / loc_id / f"s2_{t}.tif", data, crs, t10)
        s2.append(Acquisition(date=dt.date(2023, 3 + t, 1), file=f.relative_to(root), offset=0.0))
    mods["s2"] = ModalityEntry(sensor="sentinel2", acquisitions=s2)
    s1 = []
    for t in range(s1_dates):
        data = rng.uniform(-25, 0, size=(2, px, px)).astype(np.float32)
        f = write_tif(root / loc_id / f"s1_{t}.tif", data, crs, t10, nodata=-99.0)
        s1.append(Acquisition(date=dt.date(2023, 3 + t, 5), file=f.relative_to(root)))
    mods["s1"] = ModalityEntry(sensor="sentinel1", acquisitions=s1)
    if hr:
        hpx = px * 8  # 1.25 m source HR, upsampled to 0.3125 m by the reader
        data = rng.integers(1, 255, size=(4, hpx, hpx), dtype=np.uint8)
        f = write_tif(
            root / loc_id / "hr.tif", data, crs, from_origin(x0, y0, 1.25, 1.25), nodata=0
        )
        mods["hr"] = ModalityEntry(
            sensor="hr",
            acquisitions=[Acquisition(date=dt.date(2023, 6, 1), file=f.relative_to(root))],
        )
    if dem:
        data = rng.uniform(300, 900, size=(1, px // 3, px // 3)).astype(np.float32)
        f = write_tif(
            root / loc_id / "dem.tif", data, crs, from_origin(x0, y0, 30.0, 30.0), nodata=-9999.0
        )
        mods["dem"] = ModalityEntry(
            sensor="dem", acquisitions=[Acquisition(file=f.relative_to(root))]
        )
    return Location(id=loc_id, modalities=mods)


@pytest.fixture
def synthetic_catalog(tmp_path: Path) -> Catalog:
    """Two synthetic locations, 48 x 48 px on the 10 m grid (9 chips of 16 px each)."""
    root = tmp_path / "scenes"
    locs = [
        make_location(root, "loc-a", seed=1),
        make_location(root, "loc-b", x0=470000.0, seed=2, s2_dates=2),
    ]
    return Catalog(name="synthetic", locations=locs, root=root)


@pytest.fixture
def location_factory() -> Callable[..., Location]:
    """The :func:`make_location` writer."""
    return make_location


S2_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")


def chip_settings(**kw):
    """Chip settings for tests: 16 px chips, in-process unless ``workers`` is given."""
    from skysense.data.settings import ChipSettings

    base = dict(
        size=16,
        stride=16,
        workers=1,
        max_nodata_fraction=0.5,
        bands={"s2": S2_BANDS, "s1": ("VV", "VH"), "hr": ("R", "G", "B", "N")},
        max_dates={"s2": 8, "s1": 6},
    )
    base.update(kw)
    return ChipSettings(**base)


@pytest.fixture
def settings_factory() -> Callable[..., object]:
    """:func:`chip_settings`."""
    return chip_settings


@pytest.fixture(scope="session")
def synthetic_chips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Catalog, Path]:
    """The two synthetic locations chipped once (loc-b without HR), with stats.json."""
    from skysense.data.chipping import chip_catalog
    from skysense.data.stats import compute_stats, write_stats

    tmp = tmp_path_factory.mktemp("chips")
    root = tmp / "scenes"
    locs = [
        make_location(root, "loc-a", seed=1),
        make_location(root, "loc-b", x0=470000.0, seed=2, s2_dates=2, hr=False),
    ]
    cat = Catalog(name="synthetic", locations=locs, root=root)
    chip_catalog(cat, tmp / "chips", settings=chip_settings())
    write_stats(tmp / "chips", compute_stats(tmp / "chips"))
    return cat, tmp / "chips"
