"""Hostile inputs a catalog or a scene list can name, written for the raster access tests.

- VRTs: one whose ``VRTRawRasterBand`` reads a local text file as pixels, one whose source is a
  ``/vsicurl/`` URL; a GeoTIFF whose own metadata names a VRT as its overview file
  (``OVERVIEWS``/``OVERVIEW_FILE``); a GeoTIFF with a VRT sidecar ``.ovr``;
- a sparse tiled BigTIFF that claims 10^6 x 10^6 pixels in under 1 MB;
- :class:`RequestLog`: an HTTP server on 127.0.0.1 that records every request it gets and serves
  byte ranges of the files it is given (what ``/vsicurl/`` needs).
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

import numpy as np
import rasterio
from rasterio.transform import from_origin

SECRET = "db_password=hunter2-7f3a9c"
UTM32 = "EPSG:32632"
GEO = "<SRS>EPSG:32632</SRS><GeoTransform>500000,10,0,5200000,0,-10</GeoTransform>"


def secret_file(path: Path, repeat: int = 200) -> Path:
    """A text file holding a password (what an attacker wants to read through a raster)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((SECRET + "\n") * repeat)
    return path


def raw_band_vrt(path: Path, target: Path, size: int = 16) -> Path:
    """A VRT whose one band is the bytes of ``target`` (``VRTRawRasterBand``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}">{GEO}'
        '<VRTRasterBand dataType="Byte" band="1" subClass="VRTRawRasterBand">'
        f'<SourceFilename relativetoVRT="0">{target}</SourceFilename>'
        f"<ImageOffset>0</ImageOffset><PixelOffset>1</PixelOffset><LineOffset>{size}</LineOffset>"
        "</VRTRasterBand></VRTDataset>\n"
    )
    return path


def curl_vrt(path: Path, url: str, size: int = 16) -> Path:
    """A VRT whose one band comes from ``/vsicurl/<url>``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}">{GEO}'
        '<VRTRasterBand dataType="Byte" band="1"><SimpleSource>'
        f'<SourceFilename relativeToVRT="0">/vsicurl/{url}</SourceFilename>'
        "<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>\n"
    )
    return path


def plain_tif(
    path: Path,
    value: int = 7,
    size: int = 64,
    count: int = 1,
    dtype: str = "uint8",
    **extra: object,
) -> Path:
    """A small north-up GeoTIFF filled with ``value``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=count,
        dtype=dtype,
        crs=UTM32,
        transform=from_origin(500_000.0, 5_200_000.0, 10.0, 10.0),
        **extra,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((count, size, size), value, dtype=dtype))
    return path


def tif_with_overview_file(path: Path, overview: Path) -> Path:
    """A GeoTIFF whose embedded GDAL metadata names ``overview`` as its overview file."""
    plain_tif(path)
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(ns="OVERVIEWS", OVERVIEW_FILE=str(overview))
    return path


def huge_sparse_tif(path: Path, side: int = 10**6, count: int = 4) -> Path:
    """A tiled BigTIFF of ``side x side`` pixels with no tile written (about 1 MB on disk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(
        driver="GTiff",
        width=side,
        height=side,
        count=count,
        dtype="uint8",
        crs=UTM32,
        transform=from_origin(500_000.0, 5_200_000.0, 0.3125, 0.3125),
        tiled=True,
        blockxsize=4096,
        blockysize=4096,
        sparse_ok=True,
        BIGTIFF="YES",
        compress="deflate",
    )
    with rasterio.open(path, "w", **profile):
        pass
    return path


class _Handler(BaseHTTPRequestHandler):
    server: RequestLog

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        self.server.requests.append((self.command, self.path))
        data = self.server.files.get(self.path.split("?")[0])
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = 0, len(data) - 1
        m = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if m:
            start, end = int(m.group(1)), min(end, int(m.group(2) or end))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if body:
            self.wfile.write(data[start : end + 1])

    def log_message(self, *args: object) -> None:
        pass


class RequestLog(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that logs every request (``requests``: method, path).

    ``files`` maps URL paths (``/scene.tif``) to the bytes served there, with Range support.
    """

    daemon_threads = True

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = dict(files or {})
        self.requests: list[tuple[str, str]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
