"""Rasterio readers: one acquisition (a multi-band file or one file per band) onto a grid.

A file already on the target :class:`~skysense.data.grid.Grid`'s CRS whose pixels are aligned with
it at the same or an integer multiple of its resolution (S2 10/20/60 m bands on the 10 m grid, HR at
1.25 m or 0.3125 m) is read directly (:mod:`skysense.data.aligned`, no warper). Any other file is
read through one :class:`rasterio.vrt.WarpedVRT` onto the grid, so modalities in other CRSs or on
shifted grids are reprojected on the fly. Masks follow GDAL's mask semantics
(``read_masks``): the file's nodata value, its alpha band or its internal mask; where a file has
none of these, a warped alpha band marks the pixels the file covers. Rasters georeferenced only by
GCPs are warped on read. Every problem a user can fix raises :class:`RasterReadError` naming the
file, the problem and what to do.

Digital numbers become physical units with the acquisition's own DN offset (Sentinel-2:
``reflectance = (DN + offset) / 10000``; an offset that is unknown for a date from 2022-01-25 on is
an error, see :mod:`skysense.data.products.sentinel2`); a ``safe:`` acquisition is read through
its band files, SCL and metadata (:mod:`skysense.data.products.sentinel2_safe`); a mask with
``mask_classes`` marks cloud where its value is one of them (else where it is non-zero).
Uncalibrated Sentinel-1 digital numbers are refused (:meth:`SensorSpec.calibration_problem`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import RasterioError
from rasterio.io import MemoryFile
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from skysense.core.errors import NoValidDataError, RasterReadError
from skysense.core.sensors import SensorSpec
from skysense.data.aligned import GridAlignment, grid_alignment, read_aligned
from skysense.data.catalog import Acquisition
from skysense.data.grid import Grid
from skysense.data.products.sentinel2 import effective_offset, offset_problem
from skysense.data.products.sentinel2_safe import safe_acquisition
from skysense.data.raster_access import RasterAccessPolicy, gdal_message, open_dataset


def open_raster(
    path: str | Path, access: RasterAccessPolicy | None = None
) -> rasterio.DatasetReader:
    """Open a raster under the access policy and check it is readable and georeferenced.

    The file is opened by :func:`skysense.data.raster_access.open_dataset` (GeoTIFF/JPEG 2000
    only, no sidecars, no URLs unless allowed, pixel and band limits); then the last pixel of
    every band is read as a probe, so a truncated file fails here.

    Raises:
        RasterReadError: missing, refused, too large, unreadable, truncated or not georeferenced
            file (subclasses :class:`RasterAccessError`, :class:`RasterTooLargeError`).
    """
    p = Path(path)
    ds = open_dataset(p, access)
    try:
        if ds.crs is None and not ds.gcps[0]:
            raise RasterReadError(
                f"{p}: has neither a CRS nor GCPs, so it cannot be placed on the ground; "
                "georeference it (e.g. gdal_translate -a_srs EPSG:xxxx -a_ullr ...) and retry"
            )
        probe = Window(ds.width - 1, ds.height - 1, 1, 1)
        try:
            ds.read(window=probe)
            ds.read(1, window=Window(0, 0, 1, 1))
        except RasterioError as exc:
            raise RasterReadError(
                f"{p}: data cannot be read, the file is truncated or corrupt "
                f"({gdal_message(exc)}); "
                "re-download or re-export it"
            ) from None
    except BaseException:
        ds.close()
        raise
    return ds


def alpha_band(ds: rasterio.DatasetReader) -> int | None:
    """1-based index of the alpha band, or None."""
    for i, ci in enumerate(ds.colorinterp, start=1):
        if ci == ColorInterp.alpha:
            return i
    return None


def data_band_count(ds: rasterio.DatasetReader) -> int:
    """Bands holding data (an alpha band is a mask, not data)."""
    return ds.count - (1 if alpha_band(ds) is not None else 0)


def footprint_lonlat(ds: rasterio.DatasetReader) -> tuple[float, float, float, float]:
    """``(west, south, east, north)`` in degrees WGS84 of a raster (from its CRS or its GCPs)."""
    if ds.crs is not None:
        return transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)
    gcps, gcp_crs = ds.gcps
    xs = [g.x for g in gcps]
    ys = [g.y for g in gcps]
    return transform_bounds(
        gcp_crs, "EPSG:4326", min(xs), min(ys), max(xs), max(ys), densify_pts=21
    )


def infer_band_names(
    ds: rasterio.DatasetReader, spec: SensorSpec, names: Sequence[str] | None
) -> list[str]:
    """Band names of a multi-band file: from the catalog, else from its band count.

    Raises:
        RasterReadError: the band count does not match the sensor spec or the catalog.
    """
    n = data_band_count(ds)
    if names is not None:
        if len(names) != n:
            raise RasterReadError(
                f"{ds.name}: has {n} data bands but the catalog lists {len(names)} band_names "
                f"({', '.join(names)}); fix band_names or the file"
            )
        return list(names)
    options = {len(spec.band_names): spec.band_names, len(spec.default_bands): spec.default_bands}
    if spec.modality == "hr":
        options[3] = spec.default_bands[:3]
    if n in options:
        return list(options[n])
    expect = " or ".join(str(k) for k in sorted(options))
    raise RasterReadError(
        f"{ds.name}: has {n} data bands but sensor {spec.name!r} expects {expect}; "
        "list the file's bands with band_names: in the catalog or give one file per band"
    )


_MASK_BLOCK = 1024  # px a side of one block of an internal mask copied for warping (1 MB)


@dataclass
class _Layer:
    """One open source file warped onto the target grid, and the output bands it feeds."""

    path: Path
    ds: rasterio.DatasetReader
    vrt: WarpedVRT | None
    inner: WarpedVRT | None
    indexes: list[int]
    out_pos: list[int]
    units: str
    internal_mask: tuple[object, rasterio.DatasetReader, WarpedVRT] | None = None
    align: GridAlignment | None = None
    resampling: Resampling = Resampling.nearest
    nodata: float | None = None
    dn_offset: float = 0.0


@dataclass
class ModalityRead:
    """One acquisition on a grid: ``data`` C x H x W in physical units, ``valid`` H x W."""

    data: np.ndarray
    valid: np.ndarray
    grid: Grid
    bands: list[str]
    present: list[bool] = field(default_factory=list)


def choose_resampling(spec: SensorSpec, src_res: float, dst_res: float) -> Resampling:
    """Nearest for categorical data; average when shrinking by > 1.5x; else bilinear."""
    if not spec.continuous:
        return Resampling.nearest
    return Resampling.average if src_res < dst_res / 1.5 else Resampling.bilinear


def _source_res(ds: rasterio.DatasetReader, inner: WarpedVRT | None, grid: Grid) -> float:
    if inner is not None:
        return abs(inner.transform.a)
    if ds.crs is not None and ds.crs.is_geographic and not grid.crs.is_geographic:
        return (
            abs(ds.transform.a)
            * 111_320.0
            * math.cos(math.radians((ds.bounds.top + ds.bounds.bottom) / 2))
        )
    return abs(ds.transform.a)


class AcquisitionReader:
    """Reads one acquisition onto a grid; open once, then ``read(window)`` as often as needed.

    Args:
        acq: the catalog acquisition (a multi-band ``file`` or ``bands`` name -> file).
        spec: its sensor spec (with catalog overrides applied).
        root: folder relative catalog paths resolve against.
        grid: target grid (CRS, transform, size).
        bands: output band order (default: the sensor's default bands). HR bands a file lacks
            (N of an RGB image) are zero-filled and flagged in ``present``.
        resampling: force one resampling for data (default: :func:`choose_resampling`).
        nodata_override: nodata value that wins over the file's and the sensor's.
        input_units: input units that win over the dtype rule (e.g. ``linear`` S1 power); the
            acquisition's own ``input_units`` wins over these.
        access: the raster access policy (default: the process's, see
            :mod:`skysense.data.raster_access`).

    Raises:
        RasterReadError: a file is missing, refused or has the wrong bands; Sentinel-2 DN whose
            offset is unknown (see :mod:`skysense.data.products.sentinel2`); uncalibrated
            Sentinel-1 digital numbers.
    """

    def __init__(
        self,
        acq: Acquisition,
        spec: SensorSpec,
        root: Path,
        grid: Grid,
        bands: Sequence[str] | None = None,
        resampling: Resampling | None = None,
        nodata_override: float | None = None,
        input_units: str | None = None,
        access: RasterAccessPolicy | None = None,
    ) -> None:
        self.spec, self.grid, self.access = spec, grid, access
        self.bands = list(bands or spec.default_bands)
        self.layers: list[_Layer] = []
        self.present = [False] * len(self.bands)
        self._mask_vrt: (
            tuple[rasterio.DatasetReader, WarpedVRT | None, GridAlignment | None] | None
        ) = None
        self._extra_vrts: list[WarpedVRT] = []
        self._mask_classes: list[int] | None = None
        resolve = lambda p: p if p.is_absolute() else root / p
        acq = safe_acquisition(acq, root)
        input_units = acq.input_units or input_units
        self._acq = acq
        self._dn_offset = effective_offset(acq.date, acq.offset) if spec.modality == "s2" else 0.0
        try:
            if acq.bands is not None:
                for pos, name in enumerate(self.bands):
                    if name not in acq.bands:
                        if spec.modality == "hr":
                            continue
                        raise RasterReadError(
                            f"band {name!r} of sensor {spec.name!r} has no file in the catalog "
                            f"(bands given: {', '.join(acq.bands)}); add '{name}: path' under "
                            "bands:"
                        )
                    path = resolve(acq.bands[name])
                    ds = open_raster(path, self.access)
                    if data_band_count(ds) != 1:
                        ds.close()
                        raise RasterReadError(
                            f"{path}: a per-band file must hold 1 band, it holds "
                            f"{data_band_count(ds)}; "
                            "use file: with band_names: for multi-band rasters"
                        )
                    self._add_layer(path, ds, [1], [pos], resampling, nodata_override, input_units)
            else:
                if acq.file is None:  # the catalog schema asks for one of file: and bands:
                    raise RasterReadError(
                        f"a {spec.name!r} acquisition names neither file: nor bands:; give one"
                    )
                path = resolve(acq.file)
                ds = open_raster(path, self.access)
                try:
                    names = infer_band_names(ds, spec, acq.band_names)
                except RasterReadError:
                    ds.close()
                    raise
                idx: list[int] = []
                out_pos: list[int] = []
                data_idx = [i for i in range(1, ds.count + 1) if i != alpha_band(ds)]
                for p_out, name in enumerate(self.bands):
                    if name in names:
                        idx.append(data_idx[names.index(name)])
                        out_pos.append(p_out)
                    elif spec.modality != "hr":
                        ds.close()
                        raise RasterReadError(
                            f"{path}: has bands {', '.join(names)} but band {name!r} is required; "
                            "fix band_names in the catalog or add the band"
                        )
                self._add_layer(path, ds, idx, out_pos, resampling, nodata_override, input_units)
            if acq.mask is not None:
                if acq.mask_classes is not None:
                    self._mask_classes = list(acq.mask_classes)
                mpath = resolve(acq.mask)
                mds = open_raster(mpath, self.access)
                malign = grid_alignment(mds, grid)
                mvrt = None if malign is not None else self._warp(mds, Resampling.nearest, None)[0]
                self._mask_vrt = (mds, mvrt, malign)
        except BaseException:
            self.close()
            raise

    def _warp(self, ds: rasterio.DatasetReader, resampling: Resampling, nodata: float | None):
        grid = self.grid
        inner = None
        base = ds
        kw: dict = {}
        if nodata is not None:
            kw.update(src_nodata=nodata, nodata=nodata)
        elif alpha_band(ds) is None:
            kw["add_alpha"] = True
        if ds.crs is None:  # GCPs only: warp with the GCP transformer first, then onto the grid
            inner = WarpedVRT(ds, src_crs=ds.gcps[1], crs=grid.crs, resampling=resampling, **kw)
            base = inner
            kw = {"src_nodata": nodata, "nodata": nodata} if nodata is not None else {}
        vrt = WarpedVRT(
            base,
            crs=grid.crs,
            transform=grid.transform,
            width=grid.width,
            height=grid.height,
            resampling=resampling,
            **kw,
        )
        return vrt, inner

    def _warp_internal_mask(self, ds: rasterio.DatasetReader):
        """The file's internal (per-dataset) mask as an in-memory raster warped with nearest.

        GDAL's warper does not carry a source's internal mask band into a warped VRT's mask, so
        the mask is warped on its own (0 = masked or outside the file). It is copied in blocks
        of at most ``_MASK_BLOCK`` px a side into a tiled, compressed in-memory file, so memory
        follows the mask's content, not the raster's size.
        """
        memfile = MemoryFile()
        profile = dict(
            driver="GTiff",
            width=ds.width,
            height=ds.height,
            count=1,
            dtype="uint8",
            tiled=True,
            blockxsize=256,
            blockysize=256,
            compress="deflate",
        )
        if ds.crs is not None:
            profile.update(crs=ds.crs, transform=ds.transform)
        with memfile.open(**profile) as tmp:
            for r0 in range(0, ds.height, _MASK_BLOCK):
                for c0 in range(0, ds.width, _MASK_BLOCK):
                    win = Window(
                        c0, r0, min(_MASK_BLOCK, ds.width - c0), min(_MASK_BLOCK, ds.height - r0)
                    )
                    tmp.write((ds.dataset_mask(window=win) > 0).astype(np.uint8), 1, window=win)
            if ds.crs is None:
                tmp.gcps = ds.gcps
        mds = memfile.open()
        vrt, inner = self._warp(mds, Resampling.nearest, 0)
        if inner is not None:
            self._extra_vrts.append(inner)
        return (memfile, mds, vrt)

    def _add_layer(self, path, ds, idx, pos, resampling, nodata_override, input_units) -> None:
        spec = self.spec
        dtype = ds.dtypes[0]
        if dtype not in spec.dtypes:
            ds.close()
            raise RasterReadError(
                f"{path}: dtype {dtype} is not one sensor {spec.name!r} stores "
                f"({', '.join(spec.dtypes)}); convert the file or use the right sensor"
            )
        nodata = nodata_override if nodata_override is not None else ds.nodata
        if nodata is None and alpha_band(ds) is None and not _has_internal_mask(ds):
            nodata = spec.nodata
        units = spec.units_for(dtype, input_units)
        problem = spec.calibration_problem(units)
        if problem is not None:
            problem = f"{path}: {problem}"
        elif spec.modality == "s2" and units == "dn":
            problem = offset_problem(self._acq.date, self._acq.offset, str(path))
        if problem is not None:
            ds.close()
            raise RasterReadError(problem)
        dn_offset = self._dn_offset if units == "dn" else 0.0
        if dtype.startswith("complex"):
            nodata = None  # a complex nodata value cannot be passed to the warper; use coverage
        align = grid_alignment(ds, self.grid) if not dtype.startswith("complex") else None
        if align is not None:
            src_res = abs(ds.transform.a)
            rs = (
                resampling
                if resampling is not None
                else choose_resampling(spec, src_res, self.grid.res)
            )
            if (align.kx == 1 and align.ky == 1) or rs in (Resampling.nearest, Resampling.bilinear):
                self._warn_coarse(path, src_res)
                self.layers.append(
                    _Layer(
                        path, ds, None, None, idx, pos, units, None, align, rs, nodata, dn_offset
                    )
                )
                for p in pos:
                    self.present[p] = True
                return
        try:
            probe_vrt, probe_inner = self._warp(ds, Resampling.nearest, nodata)
            src_res = _source_res(ds, probe_inner, self.grid)
            probe_vrt.close()
            if probe_inner is not None:
                probe_inner.close()
            rs = (
                resampling
                if resampling is not None
                else choose_resampling(spec, src_res, self.grid.res)
            )
            self._warn_coarse(path, src_res)
            vrt, inner = self._warp(ds, rs, nodata)
            internal = (
                self._warp_internal_mask(ds) if _has_internal_mask(ds) and nodata is None else None
            )
        except RasterioError as exc:
            ds.close()
            raise RasterReadError(
                f"{path}: cannot be warped onto the target grid ({exc})"
            ) from None
        self.layers.append(
            _Layer(path, ds, vrt, inner, idx, pos, units, internal, dn_offset=dn_offset)
        )
        for p in pos:
            self.present[p] = True

    def _warn_coarse(self, path: Path, src_res: float) -> None:
        spec = self.spec
        if spec.max_gsd_m is not None and src_res > spec.max_gsd_m * 1.01:
            warnings.warn(
                f"{path}: GSD {src_res:.2f} m is coarser than the {spec.max_gsd_m} m "
                f"sensor {spec.name!r} expects; it is upsampled to {self.grid.res:.4g} m",
                stacklevel=4,
            )

    def _read_layer(self, layer: _Layer, window: Window | None) -> tuple[np.ndarray, np.ndarray]:
        """Data and validity of a layer in one pass.

        Aligned sources are read directly (:func:`~skysense.data.aligned.read_aligned`). Warped
        ones: with a nodata value the warped nodata marks invalid pixels (GDAL's nodata mask);
        with an alpha band (the file's or the warper's) it is read in the same call as the data.
        """
        if layer.align is not None:
            win = window if window is not None else Window(0, 0, self.grid.width, self.grid.height)
            ds = layer.ds
            return read_aligned(
                ds,
                layer.indexes,
                layer.align,
                win,
                layer.resampling,
                layer.nodata,
                alpha_band(ds),
                layer.nodata is None and _has_internal_mask(ds),
            )
        vrt = layer.vrt
        if vrt is None:  # _add_layer gives every layer without a grid alignment a warped VRT
            raise RuntimeError(f"{layer.path}: layer has neither a grid alignment nor a warped VRT")
        nodata = vrt.nodata
        alpha = alpha_band(vrt)
        if nodata is not None and not vrt.dtypes[0].startswith("complex"):
            raw = vrt.read(layer.indexes, window=window)
            valid = ~np.isnan(raw) if np.isnan(nodata) else raw != raw.dtype.type(nodata)
            return raw, valid
        if alpha is not None:
            both = vrt.read(layer.indexes + [alpha], window=window)
            return both[:-1], np.broadcast_to(both[-1:] > 0, both[:-1].shape)
        return vrt.read(layer.indexes, window=window), vrt.read_masks(layer.indexes, window=window)

    def read(self, window: Window | None = None) -> ModalityRead:
        """Read a window of the target grid (default: all of it).

        Returns:
            Data C x H x W in physical units (HR as stored), and ``valid``: every band valid, not
            cloud, finite.

        Raises:
            RasterReadError: a file fails while being read (truncated data, I/O error).
        """
        grid = self.grid if window is None else self.grid.window_grid(window)
        h, w = grid.height, grid.width
        out_dtype = None
        data = None
        valid = np.ones((h, w), dtype=bool)
        for layer in self.layers:
            try:
                raw, masks = self._read_layer(layer, window)
            except RasterioError as exc:
                raise RasterReadError(
                    f"{layer.path}: reading failed, the file is truncated or corrupt ({exc}); "
                    "re-download or re-export it"
                ) from None
            phys = self.spec.to_physical(raw, layer.units, layer.dn_offset)
            if data is None:
                out_dtype = self.spec.stored_dtype(str(phys.dtype))
                data = np.zeros((len(self.bands), h, w), dtype=out_dtype)
            data[layer.out_pos] = phys
            valid &= masks if masks.ndim == 2 else (masks > 0).all(axis=0)
            if layer.internal_mask is not None:
                valid &= layer.internal_mask[2].read(1, window=window) > 0
            if phys.dtype.kind == "f":
                valid &= np.isfinite(phys).all(axis=0)
        if data is None:  # pragma: no cover - a reader always has a layer
            data = np.zeros((len(self.bands), h, w), dtype=np.float32)
        if self._mask_vrt is not None:
            mds, mvrt, malign = self._mask_vrt
            if malign is not None:  # read directly; outside the mask file counts as clear
                win = (
                    window
                    if window is not None
                    else Window(0, 0, self.grid.width, self.grid.height)
                )
                cloud = read_aligned(mds, [1], malign, win, Resampling.nearest, None, None, False)[
                    0
                ][0]
            else:
                cloud = mvrt.read(1, window=window)  # type: ignore[union-attr]
            classes = self._mask_classes
            valid &= ~(np.isin(cloud, classes) if classes is not None else cloud > 0)
        if data.dtype.kind == "f":
            data[:, ~valid] = 0.0
        return ModalityRead(
            data=data, valid=valid, grid=grid, bands=list(self.bands), present=list(self.present)
        )

    def close(self) -> None:
        """Close every VRT and file."""
        for layer in self.layers:
            if layer.vrt is not None:
                layer.vrt.close()
            if layer.inner is not None:
                layer.inner.close()
            layer.ds.close()
            if layer.internal_mask is not None:
                layer.internal_mask[2].close()
                layer.internal_mask[1].close()
                layer.internal_mask[0].close()  # type: ignore[attr-defined]
        for vrt in self._extra_vrts:
            vrt.close()
        self._extra_vrts = []
        self.layers = []
        if self._mask_vrt is not None:
            if self._mask_vrt[1] is not None:
                self._mask_vrt[1].close()
            self._mask_vrt[0].close()
            self._mask_vrt = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _has_internal_mask(ds: rasterio.DatasetReader) -> bool:
    flags = ds.mask_flag_enums[0]
    return MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags


def native_grid(acq: Acquisition, root: Path, access: RasterAccessPolicy | None = None) -> Grid:
    """The grid of an acquisition's finest file, in its own CRS (GCP rasters: their warp grid)."""
    acq = safe_acquisition(acq, root)
    paths = [acq.file] if acq.file is not None else list((acq.bands or {}).values())
    best: Grid | None = None
    for p in paths:
        path = p if p.is_absolute() else root / p
        with open_raster(path, access) as ds:
            if ds.crs is None:
                with WarpedVRT(ds, src_crs=ds.gcps[1], crs=ds.gcps[1]) as v:
                    g = Grid.from_transform(v.crs, v.transform, v.width, v.height)
            else:
                g = Grid.from_transform(ds.crs, ds.transform, ds.width, ds.height)
        if best is None or g.res < best.res:
            best = g
    assert best is not None
    return best


def read_acquisition(
    acq: Acquisition,
    spec: SensorSpec,
    root: str | Path = ".",
    grid: Grid | None = None,
    window: Window | None = None,
    bands: Sequence[str] | None = None,
    resampling: Resampling | None = None,
    require_valid: bool = True,
    access: RasterAccessPolicy | None = None,
) -> ModalityRead:
    """Read one acquisition onto ``grid`` (default: its finest band's own grid), optionally a
    window.

    Raises:
        RasterReadError: a file is missing, unreadable, truncated, not georeferenced or has the
            wrong bands.
        NoValidDataError: ``require_valid`` and not one pixel is valid.
    """
    root = Path(root)
    grid = grid or native_grid(acq, root, access)
    with AcquisitionReader(
        acq, spec, root, grid, bands=bands, resampling=resampling, access=access
    ) as reader:
        out = reader.read(window)
    if require_valid and not out.valid.any():
        files = ", ".join(str(layer) for layer in (acq.paths()))
        raise NoValidDataError(
            f"{files}: no valid pixel ({spec.name}: all nodata, masked or cloud) on the requested "
            "grid; drop this acquisition from the catalog or check its nodata value"
        )
    return out
