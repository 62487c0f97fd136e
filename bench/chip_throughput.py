"""Chipping throughput: ``chip_catalog`` against a naive per-chip rasterio loop, and shard loading.

Generates its own multi-modal scenes in a temp dir, mixed like real inputs: an S2 series as
per-band files (10 m bands on the UTM 10 m grid, 20 m bands at 20 m), an S1 series on the 10 m
grid, HR at 1.25 m on half the locations and exactly on the 0.3125 m HR grid on the others, and a
~30 m DEM in EPSG:4326. Then it times, on the same scenes and chips:

- the chipper (every acquisition opened once; sources aligned with the grid read directly and
  upsampled in numpy, the others through a WarpedVRT; strips read, chips cut in memory; a process
  pool over locations with ``--workers``);
- a naive loop that, for every chip, opens each file, builds a WarpedVRT for the chip's grid and
  reads it with plain rasterio;
- ``ChipDataset`` reading every sample back from the shards.

Wall-clock rates depend on how loaded the (shared) machine is; CPU seconds (this process plus its
pool workers) are printed too, as a load-independent measure of the work done.

Usage: ``python bench/chip_throughput.py [--locations 4] [--px 96] [--workers 2]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds

from skysense.data.catalog import Acquisition, Catalog, Location, ModalityEntry
from skysense.data.chipping import chip_catalog
from skysense.data.coregistration import location_grid
from skysense.data.dataset import ChipDataset
from skysense.data.grid import Grid
from skysense.data.settings import ChipSettings

S2_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")


def _write(path: Path, data: np.ndarray, crs: CRS, transform, nodata=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=str(data.dtype),
        crs=crs,
        transform=transform,
        nodata=nodata,
        tiled=True,
        blockxsize=256,
        blockysize=256,
    ) as dst:
        dst.write(data)
        # plain bands: a 4-band uint8 GeoTIFF would otherwise read as RGBA (band 4 = alpha)
        dst.colorinterp = [ColorInterp.gray] + [ColorInterp.undefined] * (data.shape[0] - 1)
    return path


def make_scenes(root: Path, n_locations: int, px: int, s2_dates: int, s1_dates: int) -> Catalog:
    """Write ``n_locations`` multi-modal locations of ``px`` x ``px`` Sentinel pixels.

    Mixed like real inputs (see the module docstring): S2 as per-band files (B02/B03/B04/B08 at
    10 m and B05/B06/B07/B8A/B11/B12 at 20 m, on the UTM 10 m grid, nodata 0), S1 VV/VH float32 dB
    on the 10 m grid (nodata -99), HR RGBN at 1.25 m (even locations) or exactly on the 0.3125 m
    HR grid (odd locations), and a 1 arc-second (~30 m) DEM in EPSG:4326 that must be warped.
    """
    rng = np.random.default_rng(0)
    utm = CRS.from_epsg(32632)
    locs = []
    for i in range(n_locations):
        x0, y0 = 464000.0 + i * 20000, 5250000.0
        d = root / f"l{i}"
        mods = {}
        s2 = []
        for t in range(s2_dates):
            bands = {}
            for b in S2_BANDS:
                res = 10 if b in ("B02", "B03", "B04", "B08") else 20
                n = px * 10 // res
                bands[b] = _write(
                    d / f"s2_{t}_{b}.tif",
                    rng.integers(100, 6000, (1, n, n), dtype=np.uint16),
                    utm,
                    from_origin(x0, y0, res, res),
                    nodata=0,
                )
            s2.append(Acquisition(date=dt.date(2023, 1 + t, 3), bands=bands, offset=0.0))
        mods["s2"] = ModalityEntry(sensor="sentinel2", acquisitions=s2)
        s1 = []
        for t in range(s1_dates):
            f = _write(
                d / f"s1_{t}.tif",
                rng.uniform(-25, 0, (2, px, px)).astype(np.float32),
                utm,
                from_origin(x0, y0, 10, 10),
                nodata=-99.0,
            )
            s1.append(Acquisition(date=dt.date(2023, 1 + t, 7), file=f))
        mods["s1"] = ModalityEntry(sensor="sentinel1", acquisitions=s1)
        hr_res = 1.25 if i % 2 == 0 else 0.3125
        n = int(px * 10 / hr_res)
        f = _write(
            d / "hr.tif",
            rng.integers(1, 255, (4, n, n), dtype=np.uint8),
            utm,
            from_origin(x0, y0, hr_res, hr_res),
            nodata=0,
        )
        mods["hr"] = ModalityEntry(
            sensor="hr", acquisitions=[Acquisition(date=dt.date(2023, 6, 1), file=f)]
        )
        w, s, e, n_ = transform_bounds(
            utm, "EPSG:4326", x0 - 100, y0 - px * 10 - 100, x0 + px * 10 + 100, y0 + 100
        )
        res = 1.0 / 3600.0
        nx, ny = int((e - w) / res) + 2, int((n_ - s) / res) + 2
        f = _write(
            d / "dem.tif",
            rng.uniform(200, 900, (1, ny, nx)).astype(np.float32),
            CRS.from_epsg(4326),
            from_origin(w, n_, res, res),
            nodata=-9999.0,
        )
        mods["dem"] = ModalityEntry(sensor="dem", acquisitions=[Acquisition(file=f)])
        locs.append(Location(id=f"l{i}", modalities=mods))
    return Catalog(name="bench", locations=locs, root=root)


def naive_chips(cat: Catalog, size: int, hr_ratio: int = 32) -> int:
    """Per chip: open, warp (WarpedVRT) and read every acquisition of every modality."""
    n = 0
    for loc in cat.locations:
        grid = location_grid(loc, cat.root)
        for r in range(grid.height // size):
            for c in range(grid.width // size):
                chip = Grid(
                    grid.crs, grid.x0 + c * size * 10, grid.y0 - r * size * 10, 10.0, size, size
                )
                arrays = []
                for mod, entry in loc.modalities.items():
                    g = chip.scaled(hr_ratio) if mod == "hr" else chip
                    for acq in entry.acquisitions:
                        for path in acq.paths():
                            with (
                                rasterio.open(path) as src,
                                WarpedVRT(
                                    src,
                                    crs=g.crs,
                                    transform=g.transform,
                                    width=g.width,
                                    height=g.height,
                                    resampling=Resampling.bilinear,
                                    src_nodata=src.nodata if src.nodata is not None else 0,
                                ) as vrt,
                            ):
                                arrays.append(vrt.read())
                                arrays.append(vrt.read_masks())
                n += 1
    return n


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its finished children (pool workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    """Run the bench and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--locations", type=int, default=4)
    ap.add_argument("--px", type=int, default=96, help="location size, 10 m pixels")
    ap.add_argument("--size", type=int, default=16, help="chip size, 10 m pixels")
    ap.add_argument("--s2-dates", type=int, default=6)
    ap.add_argument("--s1-dates", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        cat = make_scenes(root / "scenes", args.locations, args.px, args.s2_dates, args.s1_dates)
        print(
            f"scenes: {args.locations} locations x {args.px}^2 px, S2 {args.s2_dates} dates (10 m "
            "+ 20 m "
            f"band files), S1 {args.s1_dates} dates (10 m grid), HR 1.25 m / 0.3125 m aligned, "
            f"DEM ~30 m EPSG:4326 ({time.perf_counter() - t:.1f} s)"
        )
        settings = ChipSettings(
            size=args.size,
            stride=args.size,
            workers=args.workers,
            bands={"s2": S2_BANDS, "s1": ("VV", "VH"), "hr": ("R", "G", "B", "N")},
            max_dates={"s2": args.s2_dates, "s1": args.s1_dates},
        )
        t, c = time.perf_counter(), _cpu()
        summary = chip_catalog(cat, root / "chips", settings=settings)
        t_chip, c_chip = time.perf_counter() - t, _cpu() - c
        t, c = time.perf_counter(), _cpu()
        n_naive = naive_chips(cat, args.size)
        t_naive, c_naive = time.perf_counter() - t, _cpu() - c
        assert n_naive == summary.chips, (n_naive, summary.chips)
        ds = ChipDataset(root / "chips")
        passes, cpu_passes = [], []
        for _ in range(3):  # three passes over every sample, one process
            t, c = time.perf_counter(), _cpu()
            for i in range(len(ds)):
                ds[i]
            passes.append(time.perf_counter() - t)
            cpu_passes.append(_cpu() - c)
        t_load, c_load = min(passes), min(cpu_passes)
        chip_rate, naive_rate, load_rate = (
            summary.chips / t_chip,
            n_naive / t_naive,
            len(ds) / t_load,
        )
        print(
            f"chips: {summary.chips} multi-modal chips ({args.size} px S2/S1/DEM + "
            f"{args.size * 32} px HR)"
        )
        print(
            f"chip_catalog (workers={args.workers}): {chip_rate:8.1f} chips/s  ({t_chip:.2f} s "
            "wall, "
            f"{c_chip:.2f} CPU s incl. workers: {summary.chips / c_chip:.1f} chips per CPU s)"
        )
        print(
            f"naive per-chip rasterio loop:    {naive_rate:8.1f} chips/s  ({t_naive:.2f} s wall, "
            f"{c_naive:.2f} CPU s: {n_naive / c_naive:.1f} chips per CPU s)"
        )
        print(
            f"ChipDataset from shards:         {load_rate:8.1f} samples/s  (1 process, best of 3 "
            "passes: "
            f"{', '.join(f'{x:.2f}' for x in passes)} s wall; {len(ds) / c_load:.1f} samples per "
            "CPU s)"
        )
        print(
            f"chipper / naive: {chip_rate / naive_rate:.1f}x wall, "
            f"{(summary.chips / c_chip) / (n_naive / c_naive):.1f}x per CPU second   (target >= 5x)"
        )
        print(
            f"loading / chipping: {load_rate / chip_rate:.1f}x wall (chipper with {args.workers} "
            "workers, "
            f"loading 1 process), {(len(ds) / c_load) / (summary.chips / c_chip):.1f}x per CPU "
            "second   "
            "(target >= 20x)"
        )


if __name__ == "__main__":
    main()
