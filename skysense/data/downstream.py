"""Held-out downstream sets of the sample: scene classification and segmentation.

Written by :func:`write_downstream` from the held-out scenes, read by :func:`load_downstream`::

    downstream/
      classification/index.csv          sample_id,class,class_id,location,path,fraction
      classification/<class>/<sample_id>/{s2.tif, s2_cloud.tif, s1.tif, hr.tif, dem.tif}
      segmentation/index.csv            sample_id,location,path,dominant_class
      segmentation/<sample_id>/{same files, mask.tif}

``s2.tif`` and ``s1.tif`` hold a chip's whole time series, bands stacked date-major (T x 10
reflectance x 10000, nodata 0; T x 2 sigma0 dB, nodata -99), each band described
``<YYYY-MM-DD> <band>`` and the dates in the ``acquisition_dates`` tag; ``s2_cloud.tif`` has one
band per date (1 = cloud). :func:`read_chip` also reads the older one-file-per-date layout
(``s2/<YYYY-MM-DD>.tif``, ``s2/<YYYY-MM-DD>_cloud.tif``, ``s1/<YYYY-MM-DD>.tif``).

Chips are ``chip_px`` Sentinel pixels square, cut on a grid aligned with the scenes' landscape
blocks; a classification chip is one whose dominant class covers at least half of it. Files are
the scene rasters' windows (same dtypes, nodata and CRS); a classification chip's files are hard
links to the segmentation chip's files where the file system allows.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from affine import Affine

from skysense.core.errors import SkySenseError
from skysense.core.modalities import HR_RATIO
from skysense.core.output_paths import check_id, path_inside
from skysense.core.sensors import S1_BANDS, S2_BANDS
from skysense.data import landcover as lc
from skysense.data.raster_access import open_dataset
from skysense.data.regions import region_id
from skysense.data.synthetic import DEM_NODATA, S1_NODATA, S2_NODATA

if TYPE_CHECKING:
    from skysense.data.synthetic import Scene

Kind = Literal["classification", "segmentation"]
MIN_CLASS_FRACTION = 0.5


class DownstreamError(SkySenseError):
    """A downstream set is missing or malformed (no index.csv, a chip folder without files)."""


class SampleList(list):
    """A list of sample dicts that also knows its task and class names.

    Attributes:
        task: ``multiclass`` (``label`` int64), ``multilabel`` (``label`` multi-hot float32) or
            ``segmentation`` (``mask`` int64 ``s x s``, 255 = unlabelled).
        class_names: name of each class id / multi-hot position.
    """

    def __init__(self, items: list[dict[str, Any]], task: str, class_names: list[str]) -> None:
        super().__init__(items)
        self.task = task
        self.class_names = list(class_names)


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _series_band_names(dates: list[dt.date], bands: tuple[str, ...]) -> list[str]:
    """Band descriptions of a stacked series, date-major: ``2023-04-02 B02``, ``2023-04-02 B03``..."""
    return [f"{d.isoformat()} {b}" for d in dates for b in bands]


def _write_chip(scene: Scene, r: int, c: int, n: int, folder: Path, jpeg_quality: int | None) -> None:
    """Write the ``n x n`` window at row ``r``, column ``c`` of every modality of a scene.

    Each time series is one GeoTIFF whose bands are stacked date-major (``T x bands``), each
    band described as ``<YYYY-MM-DD> <band>`` and the dates listed in the ``acquisition_dates``
    tag: a handful of files per chip instead of one per date and band, so DVC and file systems
    handle thousands of chips quickly.
    """
    from skysense.core.geotiff import write_geotiff

    tr = scene.transform @ Affine.translation(c, r)
    win = (slice(r, r + n), slice(c, c + n))
    s2_dates = ",".join(d.isoformat() for d in scene.s2_dates)
    s1_dates = ",".join(d.isoformat() for d in scene.s1_dates)
    s2 = scene.s2[(slice(None), slice(None), *win)]
    write_geotiff(folder / "s2.tif", s2.reshape(-1, n, n), scene.epsg, tr, S2_NODATA,
                  _series_band_names(scene.s2_dates, S2_BANDS),
                  {"acquisition_dates": s2_dates, "scale": "0.0001", "units": "reflectance"})
    write_geotiff(folder / "s2_cloud.tif", scene.s2_cloud[(slice(None), *win)], scene.epsg, tr, None,
                  [d.isoformat() for d in scene.s2_dates], {"acquisition_dates": s2_dates, "cloud": "1"})
    s1 = scene.s1[(slice(None), slice(None), *win)]
    write_geotiff(folder / "s1.tif", s1.reshape(-1, n, n), scene.epsg, tr, S1_NODATA,
                  _series_band_names(scene.s1_dates, S1_BANDS),
                  {"acquisition_dates": s1_dates, "units": "sigma0 dB"})
    k = HR_RATIO
    hr = scene.hr[:, r * k:(r + n) * k, c * k:(c + n) * k]
    write_geotiff(folder / "hr.tif", hr, scene.epsg, tr @ Affine.scale(1.0 / k), None, lc.HR_BANDS,
                  {"acquisition_date": scene.hr_date.isoformat()}, jpeg_quality=jpeg_quality)
    write_geotiff(folder / "dem.tif", scene.dem[(slice(None), *win)], scene.epsg, tr, DEM_NODATA, ["elevation"])


def clear_downstream(root: Path) -> None:
    """Remove the sets an earlier :func:`write_downstream` wrote under ``root`` (nothing else)."""
    for kind in ("classification", "segmentation"):
        if (Path(root) / kind / "index.csv").exists():  # a set this module wrote before: replace it
            shutil.rmtree(Path(root) / kind)


def write_scene_chips(
    scene: Scene, root: Path, chip_px: int, hr_jpeg_quality: int | None = None
) -> tuple[list[list[Any]], list[list[Any]]]:
    """Cut one held-out scene into chips under ``root``; returns its (classification,
    segmentation) index rows. Scenes write disjoint folders, so scenes can be cut in parallel.

    Raises:
        UnsafeIdError: the scene's id is not a plain name (it names the chip folders).
    """
    from skysense.core.geotiff import write_geotiff

    root = Path(root)
    check_id(scene.id, "location id")
    cls_rows, seg_rows = [], []
    size = scene.labels.shape[0]
    for r in range(0, size - chip_px + 1, chip_px):
        for c in range(0, size - chip_px + 1, chip_px):
            sid = f"{scene.id}_r{r:03d}_c{c:03d}"
            seg_dir = path_inside(root / "segmentation", sid)
            _write_chip(scene, r, c, chip_px, seg_dir, hr_jpeg_quality)
            labels = scene.labels[r:r + chip_px, c:c + chip_px]
            write_geotiff(seg_dir / "mask.tif", labels, scene.epsg,
                          scene.transform @ Affine.translation(c, r), lc.LABEL_NODATA, ["class"])
            counts = np.bincount(labels[labels != lc.LABEL_NODATA].ravel(), minlength=lc.N_CLASSES)
            dom = int(np.argmax(counts))
            frac = float(counts[dom] / max(labels.size, 1))
            seg_rows.append([sid, scene.id, f"{sid}", lc.CLASS_NAMES[dom]])
            if frac >= MIN_CLASS_FRACTION:
                rel = f"{lc.CLASS_NAMES[dom]}/{sid}"
                for f in sorted(seg_dir.rglob("*.tif")):
                    if f.name != "mask.tif":
                        _link_or_copy(f, path_inside(root / "classification", rel, f.relative_to(seg_dir)))
                cls_rows.append([sid, lc.CLASS_NAMES[dom], dom, scene.id, rel, f"{frac:.4f}"])
    return cls_rows, seg_rows


def write_index(root: Path, cls_rows: list[list[Any]], seg_rows: list[list[Any]]) -> dict[str, int]:
    """Write both sets' ``index.csv``; returns the number of chips per set."""
    root = Path(root)
    for kind, header, rows in (
        ("classification", ["sample_id", "class", "class_id", "location", "path", "fraction"], cls_rows),
        ("segmentation", ["sample_id", "location", "path", "dominant_class"], seg_rows),
    ):
        (root / kind).mkdir(parents=True, exist_ok=True)
        with open(root / kind / "index.csv", "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)
    return {"classification": len(cls_rows), "segmentation": len(seg_rows)}


def write_downstream(
    scenes: list[Scene], root: Path, chip_px: int, hr_jpeg_quality: int | None = None
) -> dict[str, int]:
    """Cut held-out scenes into classification and segmentation chips under ``root``.

    HR chips are cut from the scene's array (before any lossy compression of the scene file) and
    JPEG-compressed at ``hr_jpeg_quality`` when given.

    Returns:
        Number of chips per set, e.g. ``{"classification": 32, "segmentation": 32}``.
    """
    clear_downstream(root)
    cls_rows, seg_rows = [], []
    for scene in scenes:
        cls, seg = write_scene_chips(scene, root, chip_px, hr_jpeg_quality)
        cls_rows += cls
        seg_rows += seg
    return write_index(root, cls_rows, seg_rows)


def _doy(date: dt.date) -> int:
    return date.timetuple().tm_yday


def _read_series(folder: Path, key: str, n_bands: int) -> tuple[list[dt.date], np.ndarray, np.ndarray | None, Any]:
    """A chip's series ``key`` (``s2``/``s1``): dates, ``T x bands x H x W`` stored values, the
    ``T x H x W`` cloud mask when the chip has one, and the dataset profile (CRS, bounds).

    Reads ``<key>.tif`` (date-major stack, dates in ``acquisition_dates``) or, for chips written
    by earlier versions, one ``<key>/<YYYY-MM-DD>.tif`` per date.
    """
    stacked = folder / f"{key}.tif"
    if stacked.exists():
        with open_dataset(stacked) as src:
            data = src.read()
            dates = [dt.date.fromisoformat(d) for d in src.tags().get("acquisition_dates", "").split(",") if d]
            where = (src.bounds, src.crs)
        if not dates or data.shape[0] != len(dates) * n_bands:
            raise DownstreamError(f"{stacked}: {data.shape[0]} bands for {len(dates)} dates in its "
                                  f"acquisition_dates tag (expected {n_bands} per date); rewrite the chip")
        cloud = None
        if (folder / f"{key}_cloud.tif").exists():
            with open_dataset(folder / f"{key}_cloud.tif") as src:
                cloud = src.read() == 1
        return dates, data.reshape(len(dates), n_bands, *data.shape[1:]), cloud, where
    files = sorted(f for f in folder.glob(f"{key}/*.tif") if not f.stem.endswith("_cloud"))
    if not files:
        return [], np.zeros((0, n_bands, 0, 0)), None, None
    arrays, clouds = [], []
    for f in files:
        with open_dataset(f) as src:
            arrays.append(src.read())
            where = (src.bounds, src.crs)
        cloud_file = f.with_name(f"{f.stem}_cloud.tif")
        if cloud_file.exists():
            with open_dataset(cloud_file) as src:
                clouds.append(src.read(1) == 1)
        else:
            clouds.append(np.zeros(arrays[-1].shape[1:], dtype=bool))
    dates = [dt.date.fromisoformat(f.stem) for f in files]
    return dates, np.stack(arrays), np.stack(clouds), where


def read_chip(folder: Path, min_valid_fraction: float = 0.5, n_regions: int = 4096) -> dict[str, Any]:
    """Read one chip folder into a sample dict in physical units (numpy).

    Keys: ``id``, ``lat``, ``lon``, ``region``; ``s2`` (``T x 10 x s x s`` reflectance),
    ``s2_doy``, ``s2_valid`` (clear and with data on at least ``min_valid_fraction`` of the chip);
    ``s1`` (``T x 2 x s x s`` dB), ``s1_doy``, ``s1_valid``; ``hr`` (``4 x 32s x 32s`` uint8 as
    stored); ``dem`` (``1 x s x s`` metres). Pixels without data, and S2 pixels under the cloud
    mask, are NaN: :func:`skysense.inference.batch.arrays_to_batch` sets them to the band mean, as
    chipping does for the pre-training chips, so a downstream chip reaches the encoder exactly as
    the same window of a pre-training shard would.
    """
    from rasterio.warp import transform as warp_transform

    folder = Path(folder)
    out: dict[str, Any] = {"id": folder.name}
    s2_dates, dn, cloud, where = _read_series(folder, "s2", len(S2_BANDS))
    if not s2_dates or not (folder / "dem.tif").exists():
        raise DownstreamError(f"{folder}: chip folder without an S2 series (s2.tif) or dem.tif; rewrite "
                              "it with `skysense data sample --out DIR`")
    bounds, crs = where
    nodata = (dn == S2_NODATA).all(axis=1)  # T x H x W
    bad = nodata | cloud if cloud is not None else nodata
    refl = dn.astype(np.float32) * 1e-4
    refl[np.broadcast_to(bad[:, None], refl.shape)] = np.nan
    out["s2"] = refl
    out["s2_doy"] = np.array([_doy(d) for d in s2_dates], dtype=np.int64)
    out["s2_valid"] = (~bad).reshape(len(s2_dates), -1).mean(axis=1) >= min_valid_fraction
    s1_dates, db, _, _ = _read_series(folder, "s1", len(S1_BANDS))
    if s1_dates:
        db = db.astype(np.float32)
        bad1 = ~np.isfinite(db).all(axis=1) | (db == S1_NODATA).any(axis=1)
        db[np.broadcast_to(bad1[:, None], db.shape)] = np.nan
        out["s1"] = db
        out["s1_doy"] = np.array([_doy(d) for d in s1_dates], dtype=np.int64)
        out["s1_valid"] = (~bad1).reshape(len(s1_dates), -1).mean(axis=1) >= min_valid_fraction
    if (folder / "hr.tif").exists():
        with open_dataset(folder / "hr.tif") as src:
            out["hr"] = src.read()
    with open_dataset(folder / "dem.tif") as src:
        out["dem"] = src.read(1, masked=True).filled(np.nan).astype(np.float32)[None]
    xs, ys = warp_transform(crs, "EPSG:4326", [(bounds.left + bounds.right) / 2], [(bounds.bottom + bounds.top) / 2])
    out["lon"], out["lat"] = float(xs[0]), float(ys[0])
    out["region"] = int(region_id(out["lat"], out["lon"], n_regions))
    if (folder / "mask.tif").exists():
        with open_dataset(folder / "mask.tif") as src:
            out["mask"] = src.read(1).astype(np.int64)
    return out


def load_downstream(
    root: str | Path, kind: Kind, min_valid_fraction: float = 0.5, n_regions: int = 4096
) -> SampleList:
    """Load a downstream set written by :func:`write_downstream`.

    Args:
        root: the ``downstream`` folder (``paths.downstream``).
        kind: ``classification`` (``label`` int64 per sample) or ``segmentation`` (``mask``).
        min_valid_fraction: share of clear pixels with data for a date to count as valid.
        n_regions: size of the geo region grid for ``region``.

    Returns:
        A :class:`SampleList` of sample dicts (see :func:`read_chip`), in index order.

    Raises:
        DownstreamError: the index is missing or names a folder that does not exist.
    """
    root = Path(root)
    index = root / kind / "index.csv"
    if kind not in ("classification", "segmentation"):
        raise DownstreamError(f"unknown downstream set {kind!r}; use 'classification' or 'segmentation'")
    if not index.exists():
        raise DownstreamError(f"{index}: not found; write the sample with `skysense data sample --out DIR` "
                              "or point paths.downstream at its downstream folder")
    with open(index, newline="") as fh:
        rows = list(csv.DictReader(fh))
    samples = []
    for row in rows:
        folder = root / kind / row["path"]
        if not folder.is_dir():
            raise DownstreamError(f"{index}: row {row['sample_id']} names {folder}, which does not exist")
        s = read_chip(folder, min_valid_fraction, n_regions)
        s["id"] = row["sample_id"]
        s["location"] = row["location"]
        if kind == "classification":
            s["label"] = np.int64(int(row["class_id"]))
        samples.append(s)
    task = "multiclass" if kind == "classification" else "segmentation"
    return SampleList(samples, task, list(lc.CLASS_NAMES))
