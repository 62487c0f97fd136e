"""Writing the sample's held-out downstream sets: scene classification and segmentation chips.

Each held-out scene is cut into ``chip_px`` square chips on a grid aligned with its landscape
blocks (:func:`write_scene_chips`); :func:`write_index` writes both sets' ``index.csv`` and
``classes.csv``. The layout is the one :mod:`skysense.data.downstream` reads: each time series
is one GeoTIFF stacked date-major (``T x bands``, band ``<YYYY-MM-DD> <band>``, dates in the
``acquisition_dates`` tag), beside ``s2_cloud.tif``, ``hr.tif``, ``dem.tif`` and, for
segmentation, ``mask.tif``. A classification chip is one whose dominant class covers at least
half of it; its files are hard links to the segmentation chip's files where the file system
allows.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from skysense.core.geotiff import write_geotiff
from skysense.core.modalities import HR_RATIO
from skysense.core.output_paths import check_id, path_inside
from skysense.core.sensors import HR_BANDS, S1_BANDS, S2_BANDS
from skysense.data.downstream import CLASSES_FILE, KINDS
from skysense.data.synthetic import landcover as lc
from skysense.data.synthetic.scenes import DEM_NODATA, S1_NODATA, S2_NODATA, Scene

MIN_CLASS_FRACTION = 0.5


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _series_band_names(dates: list[dt.date], bands: tuple[str, ...]) -> list[str]:
    """Band descriptions of a stacked series, date-major: ``2023-04-02 B02``, ``2023-04-02
    B03``...
    """
    return [f"{d.isoformat()} {b}" for d in dates for b in bands]


def _write_chip(
    scene: Scene, r: int, c: int, n: int, folder: Path, jpeg_quality: int | None
) -> None:
    """Write the ``n x n`` window at row ``r``, column ``c`` of every modality of a scene.

    Each time series is one GeoTIFF whose bands are stacked date-major (``T x bands``), each
    band described as ``<YYYY-MM-DD> <band>`` and the dates listed in the ``acquisition_dates``
    tag: a handful of files per chip instead of one per date and band, so DVC and file systems
    handle thousands of chips quickly.
    """
    tr = scene.transform @ Affine.translation(c, r)
    win = (slice(r, r + n), slice(c, c + n))
    s2_dates = ",".join(d.isoformat() for d in scene.s2_dates)
    s1_dates = ",".join(d.isoformat() for d in scene.s1_dates)
    s2 = scene.s2[(slice(None), slice(None), *win)]
    write_geotiff(
        folder / "s2.tif",
        s2.reshape(-1, n, n),
        scene.epsg,
        tr,
        S2_NODATA,
        _series_band_names(scene.s2_dates, S2_BANDS),
        {"acquisition_dates": s2_dates, "scale": "0.0001", "units": "reflectance"},
    )
    write_geotiff(
        folder / "s2_cloud.tif",
        scene.s2_cloud[(slice(None), *win)],
        scene.epsg,
        tr,
        None,
        [d.isoformat() for d in scene.s2_dates],
        {"acquisition_dates": s2_dates, "cloud": "1"},
    )
    s1 = scene.s1[(slice(None), slice(None), *win)]
    write_geotiff(
        folder / "s1.tif",
        s1.reshape(-1, n, n),
        scene.epsg,
        tr,
        S1_NODATA,
        _series_band_names(scene.s1_dates, S1_BANDS),
        {"acquisition_dates": s1_dates, "units": "sigma0 dB"},
    )
    k = HR_RATIO
    hr = scene.hr[:, r * k : (r + n) * k, c * k : (c + n) * k]
    write_geotiff(
        folder / "hr.tif",
        hr,
        scene.epsg,
        tr @ Affine.scale(1.0 / k),
        None,
        HR_BANDS,
        {"acquisition_date": scene.hr_date.isoformat()},
        jpeg_quality=jpeg_quality,
    )
    write_geotiff(
        folder / "dem.tif",
        scene.dem[(slice(None), *win)],
        scene.epsg,
        tr,
        DEM_NODATA,
        ["elevation"],
    )


def clear_downstream(root: Path) -> None:
    """Remove the sets an earlier sample wrote under ``root`` (nothing else)."""
    for kind in KINDS:
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
    root = Path(root)
    check_id(scene.id, "location id")
    cls_rows, seg_rows = [], []
    size = scene.labels.shape[0]
    for r in range(0, size - chip_px + 1, chip_px):
        for c in range(0, size - chip_px + 1, chip_px):
            sid = f"{scene.id}_r{r:03d}_c{c:03d}"
            seg_dir = path_inside(root / "segmentation", sid)
            _write_chip(scene, r, c, chip_px, seg_dir, hr_jpeg_quality)
            labels = scene.labels[r : r + chip_px, c : c + chip_px]
            write_geotiff(
                seg_dir / "mask.tif",
                labels,
                scene.epsg,
                scene.transform @ Affine.translation(c, r),
                lc.LABEL_NODATA,
                ["class"],
            )
            counts = np.bincount(labels[labels != lc.LABEL_NODATA].ravel(), minlength=lc.N_CLASSES)
            dom = int(np.argmax(counts))
            frac = float(counts[dom] / max(labels.size, 1))
            seg_rows.append([sid, scene.id, f"{sid}", lc.CLASS_NAMES[dom]])
            if frac >= MIN_CLASS_FRACTION:
                rel = f"{lc.CLASS_NAMES[dom]}/{sid}"
                for f in sorted(seg_dir.rglob("*.tif")):
                    if f.name != "mask.tif":
                        _link_or_copy(
                            f, path_inside(root / "classification", rel, f.relative_to(seg_dir))
                        )
                cls_rows.append([sid, lc.CLASS_NAMES[dom], dom, scene.id, rel, f"{frac:.4f}"])
    return cls_rows, seg_rows


def write_index(root: Path, cls_rows: list[list[Any]], seg_rows: list[list[Any]]) -> dict[str, int]:
    """Write both sets' ``index.csv`` and ``classes.csv`` (``class_id,name`` of every land-cover
    class); returns the number of chips per set.
    """
    root = Path(root)
    for kind, header, rows in (
        (
            "classification",
            ["sample_id", "class", "class_id", "location", "path", "fraction"],
            cls_rows,
        ),
        ("segmentation", ["sample_id", "location", "path", "dominant_class"], seg_rows),
    ):
        (root / kind).mkdir(parents=True, exist_ok=True)
        with open(root / kind / "index.csv", "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)
        with open(root / kind / CLASSES_FILE, "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["class_id", "name"])
            w.writerows(enumerate(lc.CLASS_NAMES))
    return {"classification": len(cls_rows), "segmentation": len(seg_rows)}
