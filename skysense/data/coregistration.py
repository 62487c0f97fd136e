"""Co-registration: every modality of a location read onto one aligned grid.

The location's grid is in the UTM zone of its footprint centre, over the footprint every modality
covers (the intersection), snapped to the Sentinel pixel size (10 m). Sentinel-2, Sentinel-1 and
the DEM are read on that grid; HR imagery on the same footprint with pixels exactly ``hr_ratio``
(32) times finer (0.3125 m). Files already aligned with those grids are read directly; the others
are warped through :class:`rasterio.vrt.WarpedVRT` with the target ``crs``, ``transform``, ``width``
and ``height`` given explicitly, so modalities in other UTM zones, EPSG:4326 or compound CRSs (a
DEM in EPSG:9707) line up pixel for pixel (see :mod:`skysense.data.readers`). A location that
states its extent (``crs`` and ``bounds``, e.g. a cell of the STAC ingest's grid) gets a grid over
that extent (within the footprints), in the location's grid zone, not over the whole files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import numpy as np
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from skysense.core.errors import NoValidDataError
from skysense.core.modalities import HR_RATIO
from skysense.core.sensors import SensorSpec, get_sensor
from skysense.data.catalog import Acquisition, Location, ModalityEntry
from skysense.data.grid import Grid, utm_crs
from skysense.data.products.sentinel2_safe import safe_acquisition
from skysense.data.raster_access import RasterAccessPolicy
from skysense.data.readers import AcquisitionReader, footprint_lonlat, open_raster


def modality_spec(entry: ModalityEntry) -> SensorSpec:
    """The sensor spec of a catalog modality, with its nodata / input-unit overrides."""
    return get_sensor(entry.sensor).with_overrides(
        nodata=entry.nodata, input_units=entry.input_units
    )


def _acq_paths(acq: Acquisition, root: Path) -> list[Path]:
    acq = safe_acquisition(acq, root)
    paths = [acq.file] if acq.file is not None else list((acq.bands or {}).values())
    return [p if p.is_absolute() else root / p for p in paths]


def _footprint_in(
    acq: Acquisition, root: Path, crs: CRS | None, access: RasterAccessPolicy | None = None
) -> tuple[float, float, float, float]:
    """Bounds of an acquisition's first file in ``crs`` (None: degrees WGS84)."""
    with open_raster(_acq_paths(acq, root)[0], access) as ds:
        lonlat = footprint_lonlat(ds)
        if crs is None:
            return lonlat
        if ds.crs is not None:
            return transform_bounds(ds.crs, crs, *ds.bounds, densify_pts=21)
        return transform_bounds("EPSG:4326", crs, *lonlat, densify_pts=21)


def _intersect(boxes: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    return (
        max(b[0] for b in boxes),
        max(b[1] for b in boxes),
        min(b[2] for b in boxes),
        min(b[3] for b in boxes),
    )


def _union(boxes: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def location_grid(
    location: Location,
    root: str | Path,
    gsd_m: float = 10.0,
    modalities: Sequence[str] | None = None,
    access: RasterAccessPolicy | None = None,
) -> Grid:
    """The Sentinel grid of a location: UTM zone of the footprint centre, ``gsd_m`` pixels.

    The footprint is the intersection of the modalities' footprints (each modality: the union
    of its acquisitions), so every chip can hold every modality.

    Raises:
        RasterReadError: a file cannot be opened.
        NoValidDataError: the modalities do not overlap.
    """
    root = Path(root)
    mods = [m for m in (modalities or location.modalities) if m in location.modalities]
    acqs = {
        m: location.modalities[m].acquisitions for m in mods if location.modalities[m].acquisitions
    }
    if not acqs:
        raise NoValidDataError(
            f"location {location.id!r}: no acquisition in any modality; add some to the catalog"
        )
    lonlat = _intersect(
        [_union([_footprint_in(a, root, None, access) for a in al]) for al in acqs.values()]
    )
    if lonlat[0] >= lonlat[2] or lonlat[1] >= lonlat[3]:
        raise NoValidDataError(
            f"location {location.id!r}: the footprints of {', '.join(acqs)} do not overlap; "
            "check that every modality's files cover the same place"
        )
    if location.bounds is not None:
        crs = CRS.from_user_input(location.crs)
        boxes = [_union([_footprint_in(a, root, crs, access) for a in al]) for al in acqs.values()]
        box = _intersect([*boxes, location.bounds])
        if box[0] >= box[2] or box[1] >= box[3]:
            raise NoValidDataError(
                f"location {location.id!r}: its bounds {list(location.bounds)} ({location.crs}) "
                "lie outside the footprint its modalities share; fix the bounds or the files"
            )
        return Grid.from_bounds(crs, box, gsd_m, snap=gsd_m, inward=True)
    crs = utm_crs((lonlat[0] + lonlat[2]) / 2.0, (lonlat[1] + lonlat[3]) / 2.0)
    box = _intersect(
        [_union([_footprint_in(a, root, crs, access) for a in al]) for al in acqs.values()]
    )
    return Grid.from_bounds(crs, box, gsd_m, snap=gsd_m, inward=True)


@dataclass
class ModalityStack:
    """One modality of a location over a window.

    ``data`` is T x C x H x W for time series (``s2``, ``s1``, and ``hr`` with several dates) and
    ``valid`` T x H x W; ``dates`` holds ISO dates (None when the catalog has none).
    """

    data: np.ndarray
    valid: np.ndarray
    dates: list[str | None]
    bands: list[str]
    present: list[bool] = field(default_factory=list)


class LocationReader:
    """Every modality of a location, opened once and read window by window on one grid.

    Args:
        location: the catalog location.
        root: folder relative catalog paths resolve against.
        grid: the location's Sentinel grid (see :func:`location_grid`).
        hr_ratio: HR pixels per Sentinel pixel along each axis
        (:data:`~skysense.core.modalities.HR_RATIO`).
        modalities: which modalities to read (default: all the location has).
        bands: output bands per modality (default: the sensors' default bands).
        access: the raster access policy (default: the process's).
    """

    def __init__(
        self,
        location: Location,
        root: str | Path,
        grid: Grid,
        hr_ratio: int = HR_RATIO,
        modalities: Sequence[str] | None = None,
        bands: Mapping[str, Sequence[str]] | None = None,
        access: RasterAccessPolicy | None = None,
    ) -> None:
        self.location, self.grid, self.hr_ratio = location, grid, hr_ratio
        self.hr_grid = grid.scaled(hr_ratio)
        root = Path(root)
        self.readers: dict[str, list[tuple[str | None, AcquisitionReader]]] = {}
        self.files: dict[str, list[str]] = {}
        wanted = [m for m in (modalities or location.modalities) if m in location.modalities]
        try:
            for mod in wanted:
                entry = location.modalities[mod]
                spec = modality_spec(entry)
                mgrid = self.hr_grid if mod == "hr" else grid
                expanded = [safe_acquisition(a, root) for a in entry.acquisitions]  # safe: dates
                acqs = sorted(expanded, key=lambda a: (a.date is None, a.date))
                opened = []
                for acq in acqs:
                    reader = AcquisitionReader(
                        acq,
                        spec,
                        root,
                        mgrid,
                        bands=(bands or {}).get(mod),
                        nodata_override=entry.nodata,
                        input_units=entry.input_units,
                        access=access,
                    )
                    opened.append((acq.date.isoformat() if acq.date else None, reader))
                    self.files.setdefault(mod, []).extend(str(p) for p in acq.paths())
                if opened:
                    self.readers[mod] = opened
        except BaseException:
            self.close()
            raise

    @property
    def modalities(self) -> list[str]:
        """Modalities this reader holds, in sample order."""
        return [m for m in ("hr", "s2", "s1", "dem") if m in self.readers]

    def read(
        self, window: Window | None = None, modalities: Sequence[str] | None = None
    ) -> dict[str, ModalityStack]:
        """Read a window of the Sentinel grid for each modality (HR: the same window, 32x finer).

        The DEM is one layer: acquisitions after the first fill its gaps.
        """
        out: dict[str, ModalityStack] = {}
        for mod in modalities or self.modalities:
            out[mod] = self.read_modality(mod, window)
        return out

    def read_modality(
        self, mod: str, window: Window | None = None, dates: Sequence[int] | None = None
    ) -> ModalityStack:
        """Read one modality (optionally only the acquisitions at positions ``dates``)."""
        r = self.hr_ratio
        win = window
        if mod == "hr" and window is not None:
            win = Window(
                window.col_off * r, window.row_off * r, window.width * r, window.height * r
            )
        entries = self.readers[mod]
        picked = [entries[i] for i in dates] if dates is not None else entries
        reads = [(d, rd.read(win)) for d, rd in picked]
        first = reads[0][1]
        if mod == "dem":
            data, valid = first.data.copy(), first.valid.copy()
            for _, more in reads[1:]:
                gap = ~valid & more.valid
                data[:, gap] = more.data[:, gap]
                valid |= gap
            return ModalityStack(data[None], valid[None], [reads[0][0]], first.bands, first.present)
        data = np.stack([m.data for _, m in reads])
        valid = np.stack([m.valid for _, m in reads])
        return ModalityStack(data, valid, [d for d, _ in reads], first.bands, first.present)

    def close(self) -> None:
        """Close every file."""
        for entries in self.readers.values():
            for _, reader in entries:
                reader.close()
        self.readers = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_location(
    location: Location,
    root: str | Path,
    gsd_m: float = 10.0,
    hr_ratio: int = HR_RATIO,
    modalities: Sequence[str] | None = None,
    bands: dict[str, Sequence[str]] | None = None,
    access: RasterAccessPolicy | None = None,
) -> tuple[Grid, dict[str, ModalityStack]]:
    """Read a whole location onto its aligned grids (small locations; chipping reads in strips)."""
    grid = location_grid(location, root, gsd_m, modalities, access)
    with LocationReader(location, root, grid, hr_ratio, modalities, bands, access) as reader:
        return grid, reader.read()
