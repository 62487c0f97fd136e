"""What GDAL may open for an untrusted catalog, benchmark folder or ``predict`` scene list.

A catalog names files; GDAL would follow them anywhere. A VRT (XML) file can read any local file
as pixels (``VRTRawRasterBand``, which GDAL 3.10 cannot switch off at run time) or send requests
to any URL (a ``/vsicurl/`` source), and so can a sidecar ``.ovr`` that is a VRT, or an
``OVERVIEW_FILE`` named in a GeoTIFF's own metadata. Every raster the platform reads from such
input is opened by :func:`open_dataset`, which applies one policy:

- **formats by content**: a local file opens only when its first bytes are a TIFF/BigTIFF
  signature (GTiff driver, COGs included) or a JPEG 2000 one (JP2OpenJPEG), and GDAL is given
  that one driver (``rasterio.open(driver=...)``), so the VRT driver and the other ~150 are never
  tried; XML (VRT) files are refused by name;
- **no sidecars**: files are opened with ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``, so GDAL does
  not look for ``.ovr``/``.msk``/``.aux.xml``/world files next to the raster (external overviews,
  masks and georeferencing must be inside the file); a raster whose metadata names an external
  overview file (``OVERVIEWS`` domain) is refused;
- **local regular files only**: GDAL virtual file systems (``/vsi...``), URLs, devices and FIFOs
  are refused; http(s) URLs of hosts listed in ``data.remote.allowed_hosts`` are the one
  exception, read through ``/vsicurl/``;
- **size**: at most ``data.max_raster_pixels`` pixels (width x height) and
  ``data.max_raster_bands`` bands, checked on open before any pixel is read;
- **messages** name the path, its size and what was expected, never the file's content: the
  format sniff reads 16 bytes.

Library calls take an explicit :class:`RasterAccessPolicy`; without one they use the process's
policy, set from ``params.yaml`` by :func:`configure` (every ``skysense`` command does), else the
defaults (local files only, 2^31 pixels, 1024 bands).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import rasterio
from rasterio.errors import RasterioError

from skysense.core.credentials import strip_credentials
from skysense.core.errors import RasterReadError

DEFAULT_MAX_PIXELS = 2**31  # a 46341 px square HR orthophoto; a Sentinel-2 tile is 10980^2 = 1.2e8
DEFAULT_MAX_BANDS = 1024  # date-major stacks (80 for 8 S2 dates), hyperspectral (~240)
SNIFF_BYTES = 16
OPEN_OPTIONS = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}

_TIFF = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # TIFF and BigTIFF, both byte orders
_JP2 = (b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")  # JP2 box, J2K codestream
_URL = re.compile(r"(?:^|/)([A-Za-z][A-Za-z0-9+.-]*):/")
_SETTING = "data.remote.allowed_hosts"


class RasterAccessError(RasterReadError):
    """A raster the access policy refuses: a VRT, a URL or ``/vsi`` path, a sidecar redirect."""


class RasterTooLargeError(RasterReadError):
    """A raster with more pixels or bands than ``data.max_raster_pixels``/``max_raster_bands``."""


@dataclass(frozen=True)
class RasterAccessPolicy:
    """Which rasters may be opened, and how large they may be.

    Attributes:
        allowed_hosts: hosts (``name`` or ``name:port``) whose http(s) URLs may be read; empty:
            local files only.
        max_pixels: most pixels (width x height) of one raster.
        max_bands: most bands of one raster.
    """

    allowed_hosts: tuple[str, ...] = ()
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bands: int = DEFAULT_MAX_BANDS

    @classmethod
    def from_config(cls, data: Any) -> RasterAccessPolicy:
        """From ``params.yaml: data`` (:class:`skysense.config.DataConfig`)."""
        return cls(
            allowed_hosts=tuple(h.lower() for h in data.remote.allowed_hosts),
            max_pixels=data.max_raster_pixels,
            max_bands=data.max_raster_bands,
        )


_process_policy: RasterAccessPolicy | None = None


def configure(policy: RasterAccessPolicy | Any) -> RasterAccessPolicy:
    """Set this process's default policy (a policy, or a ``DataConfig`` to build one from)."""
    global _process_policy
    _process_policy = (
        policy if isinstance(policy, RasterAccessPolicy) else RasterAccessPolicy.from_config(policy)
    )
    return _process_policy


def current_policy(policy: RasterAccessPolicy | None = None) -> RasterAccessPolicy:
    """``policy`` when given, else the configured process policy, else the defaults."""
    return policy or _process_policy or RasterAccessPolicy()


def _remote_url(text: str) -> str | None:
    """The URL a path names (``/vsicurl/https:/h/x``, ``.../https:/h/x`` from a relative catalog
    entry, ``https://h/x``), with the ``//`` that :class:`~pathlib.Path` collapses restored.
    """
    text = text.removeprefix("/vsicurl/")
    m = _URL.search(text)
    if m is None:
        return None
    rest = text[m.end() :].lstrip("/")
    return f"{m.group(1).lower()}://{rest}"


def is_remote(path: str | Path) -> bool:
    """Whether ``path`` names a URL or a GDAL virtual file system rather than a local file."""
    text = str(path)
    return text.startswith("/vsi") or _remote_url(text) is not None


def _host_allowed(url: str, hosts: tuple[str, ...]) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname.lower()
    return host in hosts or (parts.port is not None and f"{host}:{parts.port}" in hosts)


def shown_name(path: str | Path) -> str:
    """``path`` as messages print it: without the ``user:password@`` of a URL."""
    return strip_credentials(str(path))


def gdal_name(path: str | Path, policy: RasterAccessPolicy | None = None) -> str:
    """The name GDAL is given for ``path``: the local path, or ``/vsicurl/URL`` for an allowed host.

    Raises:
        RasterAccessError: a ``/vsi`` path, a URL of a host not in ``data.remote.allowed_hosts``,
            or a scheme other than http(s).
    """
    policy = current_policy(policy)
    text = str(path)
    url = _remote_url(text)
    if url is None and not text.startswith("/vsi"):
        return text
    shown = shown_name(text)
    if url is None or (text.startswith("/vsi") and not text.startswith("/vsicurl/")):
        raise RasterAccessError(
            f"{shown}: a GDAL virtual file system path; catalogs and scene lists may name local "
            "files only (extract the file and list its path), or http(s) URLs of hosts listed "
            f"in {_SETTING}"
        )
    if not _host_allowed(url, policy.allowed_hosts):
        parts = urlsplit(url)
        host = (parts.hostname or "?") + (f":{parts.port}" if parts.port else "")
        allowed = ", ".join(policy.allowed_hosts) or "none"
        raise RasterAccessError(
            f"{shown}: a URL ({parts.scheme}://{host}/...); remote reads are off "
            f"for this host (allowed: {allowed}); download the file and list its local path, or "
            f"add the host to {_SETTING} in params.yaml (http/https only)"
        )
    return f"/vsicurl/{url}"


def _size_text(n: int) -> str:
    for unit, div in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} bytes"


def sniff_driver(path: str | Path) -> str:
    """The one GDAL driver a local file may be opened with, from its first 16 bytes.

    Raises:
        RasterReadError: missing, empty, text or not a GeoTIFF/JPEG 2000 file (never quoting it).
        RasterAccessError: not a regular file, or an XML (VRT) file.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise RasterReadError(
            f"{p}: file not found; fix the path in the catalog or restore the file"
        ) from None
    except OSError as exc:
        raise RasterReadError(
            f"{p}: cannot be read ({exc.strerror}); check the path and its permissions"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise RasterAccessError(
            f"{p}: not a regular file (a directory, device or FIFO); list a GeoTIFF file"
        )
    try:
        with open(p, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as exc:
        raise RasterReadError(
            f"{p}: cannot be read ({exc.strerror}); check its permissions"
        ) from None
    fix = "replace it with a valid GeoTIFF (re-download or re-export it)"
    if not head:
        raise RasterReadError(f"{p}: is empty (0 bytes); {fix}")
    if head.startswith(_TIFF):
        return "GTiff"
    if head.startswith(_JP2):
        return "JP2OpenJPEG"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        raise RasterAccessError(
            f"{p}: an XML file ({_size_text(st.st_size)}), e.g. a GDAL VRT; VRTs can make GDAL "
            "read "
            "any local file or URL, so only GeoTIFF and JPEG 2000 files are opened; convert it "
            "(gdal_translate in.vrt out.tif) and list the GeoTIFF"
        )
    if all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        raise RasterReadError(
            f"{p}: is a text file, not a raster (not recognized as GeoTIFF or JPEG 2000; "
            f"{_size_text(st.st_size)}); {fix}"
        )
    raise RasterReadError(
        f"{p}: is not a GeoTIFF or JPEG 2000 file ({_size_text(st.st_size)}, no TIFF/JP2 signature "
        f"in its first bytes), or is corrupt; {fix}"
    )


def size_problem(
    width: int, height: int, count: int, policy: RasterAccessPolicy | None = None
) -> str | None:
    """Why a ``width x height`` raster of ``count`` bands is over the limits, or None."""
    policy = current_policy(policy)
    pixels = width * height
    if pixels > policy.max_pixels:
        return (
            f"{width} x {height} = {pixels:.3g} pixels, more than data.max_raster_pixels "
            f"({policy.max_pixels}); split it into tiles (gdal_retile.py) or raise the limit"
        )
    if count > policy.max_bands:
        return (
            f"{count} bands, more than data.max_raster_bands ({policy.max_bands}); "
            "keep the bands the sensor needs or raise the limit"
        )
    return None


def gdal_message(exc: Exception) -> str:
    """GDAL's error, cut short (it names the file and the fault, never more than that)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def open_dataset(
    path: str | Path, policy: RasterAccessPolicy | None = None, *, check_size: bool = True
) -> rasterio.DatasetReader:
    """Open a raster under the access policy (see the module doc); nothing else opens inputs.

    Args:
        path: local file, or an http(s) URL of an allowed host.
        policy: the policy (default: :func:`current_policy`).
        check_size: refuse rasters over the pixel/band limits (validation profiles them instead).

    Raises:
        RasterAccessError: refused by the policy.
        RasterTooLargeError: over ``data.max_raster_pixels`` or ``data.max_raster_bands``.
        RasterReadError: missing, empty, text or corrupt file.
    """
    policy = current_policy(policy)
    name = gdal_name(path, policy)
    if name.startswith("/vsicurl/"):
        driver = "JP2OpenJPEG" if name.lower().endswith((".jp2", ".j2k")) else "GTiff"
    else:
        name = os.path.abspath(name)  # never a driver prefix GDAL would parse (GTIFF_DIR:1:...)
        driver = sniff_driver(name)
    try:
        with rasterio.Env(**OPEN_OPTIONS):
            ds = rasterio.open(name, driver=driver)
    except RasterioError as exc:
        raise RasterReadError(
            f"{shown_name(path)}: is not a raster GDAL can read, or is corrupt "
            f"({gdal_message(exc)}); "
            "replace it with a valid GeoTIFF (re-download or re-export it)"
        ) from None
    try:
        if ds.tags(ns="OVERVIEWS"):
            raise RasterAccessError(
                f"{shown_name(path)}: its metadata names an external overview file (OVERVIEWS "
                "domain, "
                "OVERVIEW_FILE), which GDAL would open with any driver; rewrite it without "
                "(gdal_translate -co COPY_SRC_OVERVIEWS=YES) and list the copy"
            )
        if check_size:
            problem = size_problem(ds.width, ds.height, ds.count, policy)
            if problem is not None:
                raise RasterTooLargeError(f"{shown_name(path)}: {problem}")
    except BaseException:
        ds.close()
        raise
    return ds
