"""Readers of public labelled benchmarks into the platform's sample dicts (physical units, numpy).

- EuroSAT multispectral: ``<root>/<ClassName>/*.tif``, 13 bands (B01..B12 with B8A, B10), one
  date, 64 x 64 at 10 m. The 10 SkySense bands are kept. EuroSAT has no acquisition date: every
  sample gets ``s2_doy = assumed_doy``.
- BigEarthNet-MM: Sentinel-2 patch folders (``<patch>_B02.tif`` ... at 10, 20 and 60 m, and
  ``<patch>_labels_metadata.json`` with ``labels``) and Sentinel-1 patch folders (``_VV.tif``,
  ``_VH.tif`` in dB, a JSON whose ``corresponding_s2_patch`` names its S2 patch). 20 m bands are
  resampled to the 10 m grid of B02 (bilinear, rasterio ``WarpedVRT``). ``label`` is a multi-hot
  vector over the sorted label names found in the set.

Both return a :class:`skysense.data.downstream.SampleList`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform as warp_transform

from skysense.core.sensors import S1_BANDS, S2_BANDS, S2_PRODUCT_BANDS
from skysense.data.downstream import DownstreamError, SampleList
from skysense.data.raster_access import open_dataset
from skysense.data.regions import region_id

EUROSAT_BANDS: tuple[str, ...] = S2_PRODUCT_BANDS  # the 13 MSI bands in product order


def _centre_latlon(src) -> tuple[float, float]:

    b = src.bounds
    if src.crs is None:
        raise DownstreamError(f"{src.name}: raster has no CRS; benchmarks must be georeferenced")
    xs, ys = warp_transform(
        src.crs, "EPSG:4326", [(b.left + b.right) / 2], [(b.bottom + b.top) / 2]
    )
    return float(ys[0]), float(xs[0])


def load_eurosat(root: str | Path, assumed_doy: int = 182, n_regions: int = 4096) -> SampleList:
    """Load EuroSAT-MS (``<root>/<ClassName>/*.tif``) as single-date S2 samples.

    Args:
        root: folder holding one sub-folder per class.
        assumed_doy: day of year given to every image (EuroSAT does not record dates).
        n_regions: geo region grid size for ``region``.

    Returns:
        Samples with ``s2`` (``1 x 10 x 64 x 64`` reflectance), ``s2_doy``, ``s2_valid``, ``lat``,
        ``lon``, ``region``, ``label`` (int64, index into ``class_names``: sorted folder names).
    """
    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise DownstreamError(
            f"{root}: no class folders; EuroSAT-MS is <root>/<ClassName>/*.tif "
            "(set eval.eurosat to the folder holding the class folders)"
        )
    keep = [EUROSAT_BANDS.index(b) + 1 for b in S2_BANDS]
    samples: list[dict[str, Any]] = []
    for label, name in enumerate(classes):
        for f in sorted((root / name).glob("*.tif")):
            with open_dataset(f) as src:
                if src.count != len(EUROSAT_BANDS):
                    raise DownstreamError(
                        f"{f}: {src.count} bands, EuroSAT-MS has 13 (B01..B12, B8A); "
                        "use the multispectral (MS) release, not RGB"
                    )
                dn = src.read(keep).astype(np.float32)
                lat, lon = _centre_latlon(src)
            samples.append(
                {
                    "id": f"{name}/{f.stem}",
                    "lat": lat,
                    "lon": lon,
                    "region": int(region_id(lat, lon, n_regions)),
                    "s2": (dn * 1e-4)[None],
                    "s2_doy": np.array([assumed_doy], dtype=np.int64),
                    "s2_valid": np.array([bool((dn > 0).any())]),
                    "label": np.int64(label),
                }
            )
    return SampleList(samples, "multiclass", classes)


def _read_on_grid(path: Path, ref) -> np.ndarray:
    """Read a single-band raster resampled (bilinear) onto the grid of the open dataset ``ref``."""
    with open_dataset(path) as src:
        if (src.crs, src.transform, src.shape) == (ref.crs, ref.transform, ref.shape):
            return src.read(1)
        with WarpedVRT(
            src,
            crs=ref.crs,
            transform=ref.transform,
            width=ref.width,
            height=ref.height,
            resampling=Resampling.bilinear,
        ) as vrt:
            return vrt.read(1)


def _doy(text: str) -> int:
    return dt.datetime.fromisoformat(text.replace("T", " ")).timetuple().tm_yday


def load_bigearthnet(root: str | Path, n_regions: int = 4096) -> SampleList:
    """Load BigEarthNet(-MM) patches found anywhere under ``root``.

    S2 patches are folders with ``*_B02.tif`` and ``*_labels_metadata.json``; S1 patches are
    folders with ``*_VV.tif``, ``*_VH.tif`` and a JSON naming ``corresponding_s2_patch``.

    Returns:
        One sample per S2 patch: ``s2`` (``1 x 10 x 120 x 120`` reflectance), ``s2_doy``,
        ``s2_valid``, and when an S1 patch pairs with it ``s1`` (``1 x 2 x 120 x 120`` dB, VV, VH),
        ``s1_doy``, ``s1_valid``; ``label`` a float32 multi-hot vector over ``class_names``.

    Raises:
        DownstreamError: no patch under ``root``, or a patch lacks a band or its labels.
    """
    root = Path(root)
    metas = sorted(root.rglob("*_labels_metadata.json")) if root.is_dir() else []
    s2_dirs: dict[str, Path] = {}
    s1_for: dict[str, Path] = {}
    for meta_path in metas:
        meta = json.loads(meta_path.read_text())
        if "corresponding_s2_patch" in meta:
            s1_for[meta["corresponding_s2_patch"]] = meta_path.parent
        elif any(meta_path.parent.glob("*_B02.tif")):
            s2_dirs[meta_path.parent.name] = meta_path.parent
    if not s2_dirs:
        raise DownstreamError(
            f"{root}: no BigEarthNet S2 patch (folder with *_B02.tif and "
            "*_labels_metadata.json); set eval.bigearthnet to the dataset folder"
        )
    raw: list[tuple[dict[str, Any], list[str]]] = []
    for name, folder in sorted(s2_dirs.items()):
        meta = json.loads((folder / f"{name}_labels_metadata.json").read_text())
        ref_path = folder / f"{name}_B02.tif"
        with open_dataset(ref_path) as ref:
            bands = []
            for b in S2_BANDS:
                f = folder / f"{name}_{b}.tif"
                if not f.exists():
                    raise DownstreamError(f"{f}: missing band {b} of BigEarthNet patch {name}")
                bands.append(_read_on_grid(f, ref).astype(np.float32))
            lat, lon = _centre_latlon(ref)
            s2 = np.stack(bands) * 1e-4
            sample: dict[str, Any] = {
                "id": name,
                "lat": lat,
                "lon": lon,
                "region": int(region_id(lat, lon, n_regions)),
                "s2": s2[None].astype(np.float32),
                "s2_doy": np.array([_doy(meta["acquisition_date"])], dtype=np.int64),
                "s2_valid": np.array([bool((s2 > 0).any())]),
            }
            s1_dir = s1_for.get(name)
            if s1_dir is not None:
                pols = []
                for pol in S1_BANDS:
                    found = sorted(s1_dir.glob(f"*_{pol}.tif"))
                    if not found:
                        raise DownstreamError(
                            f"{s1_dir}: missing *_{pol}.tif of the S1 patch paired with {name}"
                        )
                    pols.append(_read_on_grid(found[0], ref).astype(np.float32))
                s1 = np.stack(pols)
                s1_meta = json.loads(next(s1_dir.glob("*_labels_metadata.json")).read_text())
                finite = np.isfinite(s1).all(axis=0)
                sample["s1"] = np.where(
                    np.isfinite(s1), s1, np.nanmean(s1) if finite.any() else -15.0
                )[None]
                sample["s1_doy"] = np.array([_doy(s1_meta["acquisition_time"])], dtype=np.int64)
                sample["s1_valid"] = np.array([bool(finite.mean() >= 0.5)])
        raw.append((sample, list(meta["labels"])))
    names = sorted({lab for _, labs in raw for lab in labs})
    samples = []
    for sample, labs in raw:
        hot = np.zeros(len(names), dtype=np.float32)
        hot[[names.index(lab) for lab in labs]] = 1.0
        sample["label"] = hot
        samples.append(sample)
    return SampleList(samples, "multilabel", names)
