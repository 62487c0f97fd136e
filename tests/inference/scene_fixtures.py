"""Fixtures: a 10-band Sentinel-2 scene stacked from a real BigEarthNet patch, its S1 pair, and a
tiny SkySense export (random init) registered in a real SQLite MLflow store.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, reproject

DATA = Path(__file__).resolve().parents[1] / "data" / "real" / "inference"
S2_PATCH = "S2A_MSIL2A_20170613T101031_87_48"
# a second real patch, in another UTM zone (EPSG:32629, Ireland; 87_48 is EPSG:32633, Austria)
OTHER_ZONE_PATCH = "S2A_MSIL2A_20170617T113321_4_55"
OTHER_ZONE = (
    Path(__file__).resolve().parents[1] / "data" / "real" / "bigearthnet" / OTHER_ZONE_PATCH
)
S1_PATCH = "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48"
BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
NODATA_CORNER = 10  # rows/cols of the top-left corner set to nodata in the stacked scene


def stack_s2(
    out: Path, nodata_corner: int = NODATA_CORNER, folder: Path = DATA, patch: str = S2_PATCH
) -> Path:
    """Stack the 10 SkySense bands of a real patch (default: 87_48, EPSG:32633) on its 10 m grid
    (20 m bands bilinear), uint16 DN with nodata 0, and blank a top-left corner to
    nodata.
    """
    with rasterio.open(folder / f"{patch}_B02.tif") as ref:
        profile = ref.profile | {"count": len(BANDS), "dtype": "uint16", "nodata": 0}
        shape, crs, transform = (ref.height, ref.width), ref.crs, ref.transform
    stack = np.zeros((len(BANDS), *shape), dtype=np.uint16)
    for i, band in enumerate(BANDS):
        with rasterio.open(folder / f"{patch}_{band}.tif") as src:
            reproject(
                rasterio.band(src, 1),
                stack[i],
                dst_transform=transform,
                dst_crs=crs,
                resampling=Resampling.bilinear,
            )
    stack[:, :nodata_corner, :nodata_corner] = 0
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(stack)
        dst.descriptions = tuple(BANDS)
    return out


def stack_s1(out: Path) -> Path:
    """VV and VH (dB) of the paired real S1 patch as one 2-band raster."""
    with (
        rasterio.open(DATA / f"{S1_PATCH}_VV.tif") as vv,
        rasterio.open(DATA / f"{S1_PATCH}_VH.tif") as vh,
    ):
        profile = vv.profile | {"count": 2}
        data = np.stack([vv.read(1), vh.read(1)])
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data)
    return out


def write_random_export(folder: Path, seed: int = 0, preset: str = "skysense-tiny") -> Path:
    """A randomly initialised encoder exported like training does (safetensors + config.json)."""
    import torch
    from safetensors.torch import save_file

    from skysense.models import create_model

    torch.manual_seed(seed)
    model = create_model(preset)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(folder / "model.safetensors"),
    )
    (folder / "config.json").write_text(
        json.dumps(
            {
                "preset": preset,
                "overrides": {},
                "spec": model.spec.to_dict(),
                "stats": None,
                "data_version": "md5:test",
                "git_commit": "test",
                "step": 0,
            },
            default=str,
        )
    )
    return folder


@pytest.fixture(scope="session")
def scene_files(tmp_path_factory) -> dict[str, Path]:
    """``{"s2": 10-band uint16 stack, "s1": VV/VH dB}`` in a temp folder."""
    root = tmp_path_factory.mktemp("scene")
    return {"s2": stack_s2(root / "s2.tif"), "s1": stack_s1(root / "s1.tif")}
