"""The bundled sample: synthetic multi-modal scenes written as GeoTIFFs with their catalog.

``write_sample(out_dir, settings, seed)`` writes, for each place of ``data.sample`` (pre-training
and
held-out), tiled and compressed GeoTIFFs in the place's UTM zone::

    s2/<loc>_<YYYYMMDD>.tif        10 bands B02..B12, uint16 reflectance x 10000, nodata 0
    s2/<loc>_<YYYYMMDD>_cloud.tif  uint8 cloud mask, 1 = cloud
    s1/<loc>_<YYYYMMDD>.tif        VV, VH sigma0 dB float32, nodata -99
    hr/<loc>.tif                   R, G, B, N uint8 at 0.3125 m (32x finer, same origin)
    dem/<loc>.tif                  elevation float32 metres, 10 m
    labels/<loc>.tif               land-cover class ids uint8, nodata 255 (see landcover)
    catalog.yaml                   skysense.data.catalog schema
    downstream/                    held-out benchmark sets (see skysense.data.downstream)

The land-cover classes and the physics behind each sensor are documented in
:mod:`skysense.data.synthetic.landcover` and :mod:`skysense.data.synthetic.scenes`.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import rasterio

from skysense.core.errors import RasterWriteError
from skysense.core.geotiff import write_geotiff
from skysense.core.output_paths import check_id, path_inside
from skysense.core.sensors import HR_BANDS, S1_BANDS, S2_BANDS
from skysense.data.catalog import Acquisition, Catalog, Location, ModalityEntry, save_catalog
from skysense.data.synthetic import landcover as lc
from skysense.data.synthetic.downstream import clear_downstream, write_index, write_scene_chips
from skysense.data.synthetic.scenes import (
    DEM_NODATA,
    S1_NODATA,
    S2_NODATA,
    Scene,
    sites_for,
    synthesize_scene,
)
from skysense.data.synthetic.settings import SampleConfig


class SampleWriteError(RasterWriteError):
    """The sample cannot be written (output folder not writable, or a file in the way)."""


def write_scene(scene: Scene, out_dir: Path, hr_jpeg_quality: int | None = None) -> Location:
    """Write every raster of a scene under ``out_dir`` and return its catalog entry.

    Raises:
        UnsafeIdError: the scene's id is not a plain name (it names the files).
    """
    loc = check_id(scene.id, "location id")
    s2_acq, s1_acq = [], []
    for t, date in enumerate(scene.s2_dates):
        stem = f"{loc}_{date:%Y%m%d}"
        write_geotiff(
            path_inside(out_dir / "s2", f"{stem}.tif"),
            scene.s2[t],
            scene.epsg,
            scene.transform,
            S2_NODATA,
            S2_BANDS,
            {"scale": "0.0001", "units": "reflectance"},
        )
        write_geotiff(
            path_inside(out_dir / "s2", f"{stem}_cloud.tif"),
            scene.s2_cloud[t],
            scene.epsg,
            scene.transform,
            None,
            ["cloud"],
            {"values": "1=cloud 0=clear"},
        )
        # reflectance x 10000 with no DN offset (stated: the dates are after 2022-01-25)
        s2_acq.append(
            Acquisition(
                date=date,
                file=Path(f"s2/{stem}.tif"),
                band_names=list(S2_BANDS),
                mask=Path(f"s2/{stem}_cloud.tif"),
                offset=0.0,
            )
        )
    for t, date in enumerate(scene.s1_dates):
        name = f"{loc}_{date:%Y%m%d}.tif"
        write_geotiff(
            path_inside(out_dir / "s1", name),
            scene.s1[t],
            scene.epsg,
            scene.transform,
            S1_NODATA,
            S1_BANDS,
            {"units": "dB", "quantity": "sigma0"},
        )
        s1_acq.append(Acquisition(date=date, file=Path(f"s1/{name}"), band_names=list(S1_BANDS)))
    write_geotiff(
        path_inside(out_dir / "hr", f"{loc}.tif"),
        scene.hr,
        scene.epsg,
        scene.hr_transform,
        None,
        HR_BANDS,
        jpeg_quality=hr_jpeg_quality,
    )
    write_geotiff(
        path_inside(out_dir / "dem", f"{loc}.tif"),
        scene.dem,
        scene.epsg,
        scene.transform,
        DEM_NODATA,
        ["elevation"],
        {"units": "metre"},
    )
    write_geotiff(
        path_inside(out_dir / "labels", f"{loc}.tif"),
        scene.labels,
        scene.epsg,
        scene.transform,
        lc.LABEL_NODATA,
        ["class"],
        {f"class_{c.id}": c.name for c in lc.CLASSES},
    )
    return Location(
        id=loc,
        split=scene.split,
        labels=Path(f"labels/{loc}.tif"),
        modalities={
            "s2": ModalityEntry(sensor="sentinel2", acquisitions=s2_acq),
            "s1": ModalityEntry(sensor="sentinel1", acquisitions=s1_acq),
            "hr": ModalityEntry(
                sensor="hr",
                acquisitions=[
                    Acquisition(
                        date=scene.hr_date, file=Path(f"hr/{loc}.tif"), band_names=list(HR_BANDS)
                    )
                ],
            ),
            "dem": ModalityEntry(
                sensor="dem",
                acquisitions=[Acquisition(file=Path(f"dem/{loc}.tif"), band_names=["elevation"])],
            ),
        },
    )


def _write_location(site, split: str, index: int, sc, seed: int, out_dir: Path):
    """Synthesize and write one place (and its downstream chips when held out).

    Returns ``(index, Location, classification rows, segmentation rows)``.
    """
    scene = synthesize_scene(site, split, index, sc, seed)
    # one GDAL environment for the place's thousands of small files, not one per file opened
    with rasterio.Env():
        location = write_scene(scene, out_dir, sc.hr_jpeg_quality)
        rows: tuple[list, list] = ([], [])
        if split == "heldout":
            rows = write_scene_chips(
                scene, out_dir / "downstream", sc.downstream_chip_px, sc.hr_jpeg_quality
            )
    return index, location, rows[0], rows[1]


def write_sample(out_dir: Path, sc: SampleConfig, seed: int) -> Path:
    """Write the synthetic multi-modal sample and its downstream sets.

    Deterministic: the same ``seed`` and settings give identical files whatever ``sc.workers``
    (places are written in parallel processes, each seeded by its index, and the catalog and
    indexes are assembled in place order).

    Args:
        out_dir: output folder (created; files of an earlier sample are overwritten).
        sc: the ``data.sample`` settings.
        seed: the ``data.seed``.

    Returns:
        Path of ``catalog.yaml``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SampleWriteError(f"{out_dir}: exists and is not a folder; pass --out to a folder")
    clear_downstream(out_dir / "downstream")
    jobs = [
        (site, split, index, sc, seed, out_dir)
        for index, (site, split) in enumerate(sites_for(sc.locations, sc.heldout_locations))
    ]
    if sc.workers <= 1 or len(jobs) <= 1:
        results = [_write_location(*job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=min(sc.workers, len(jobs))) as pool:
            # held-out places (they also write chips) first, so the two processes finish together
            order = sorted(range(len(jobs)), key=lambda i: jobs[i][1] != "heldout")
            futures = [pool.submit(_write_location, *jobs[i]) for i in order]
            results = [f.result() for f in futures]
    results.sort(key=lambda r: r[0])
    locations = [r[1] for r in results]
    write_index(
        out_dir / "downstream",
        [row for r in results for row in r[2]],
        [row for r in results for row in r[3]],
    )
    catalog = Catalog(
        name=f"skysense-sample-seed{seed}", locations=locations, root=out_dir.resolve()
    )
    return save_catalog(catalog, out_dir / "catalog.yaml")
