"""The raster access policy on real hostile files: VRTs, URLs, sidecars, huge and corrupt rasters.

Each test reproduces a defect of issue #21 (items 6, 8, 9) through the readers every stage uses
(:func:`skysense.data.readers.open_raster`, :func:`read_acquisition`); GDAL and the HTTP server
(:class:`untrusted_rasters.RequestLog`, on 127.0.0.1) are real.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from untrusted_rasters import (
    SECRET,
    RequestLog,
    curl_vrt,
    huge_sparse_tif,
    plain_tif,
    raw_band_vrt,
    secret_file,
    tif_with_overview_file,
)

from skysense.core.errors import RasterReadError
from skysense.core.sensors import get_sensor
from skysense.data.catalog import Acquisition
from skysense.data.raster_access import (
    RasterAccessError,
    RasterAccessPolicy,
    RasterTooLargeError,
    open_dataset,
)
from skysense.data.readers import open_raster, read_acquisition

DEM = get_sensor("dem")


# ------------------------------------------------------------------ item 6: what GDAL may open
def test_vrt_raw_band_on_a_local_file_is_refused_not_read(tmp_path: Path) -> None:
    vrt = raw_band_vrt(tmp_path / "scene.vrt", secret_file(tmp_path / "secrets.txt"))
    with pytest.raises(RasterAccessError, match=r"scene\.vrt: an XML file .*VRT") as err:
        open_raster(vrt)
    assert SECRET not in str(err.value) and "hunter2" not in str(err.value)
    with pytest.raises(RasterAccessError):
        read_acquisition(Acquisition(file=vrt), DEM, require_valid=False)


def test_vrt_with_a_vsicurl_source_sends_no_request(tmp_path: Path) -> None:
    with RequestLog() as server:
        vrt = curl_vrt(tmp_path / "remote.vrt", f"{server.url}/x.tif")
        with pytest.raises(RasterAccessError, match="VRT"):
            open_raster(vrt)
        with pytest.raises(RasterAccessError):
            read_acquisition(Acquisition(file=vrt), DEM, require_valid=False)
    assert server.requests == []


@pytest.mark.parametrize("form", ["vsicurl", "url", "relative-url", "vsis3", "vsizip"])
def test_vsi_paths_and_urls_are_refused_without_a_request(tmp_path: Path, form: str) -> None:
    with RequestLog({"/y.tif": plain_tif(tmp_path / "y.tif").read_bytes()}) as server:
        path = {
            "vsicurl": Path(f"/vsicurl/{server.url}/y.tif"),  # as the catalog's Path holds it
            "url": Path(f"{server.url}/y.tif"),
            "relative-url": tmp_path / f"{server.url}/y.tif",  # a relative entry, resolved
            "vsis3": Path("/vsis3/bucket/y.tif"),
            "vsizip": Path(f"/vsizip/{tmp_path}/a.zip/y.tif"),
        }[form]
        with pytest.raises(RasterAccessError, match=r"data\.remote\.allowed_hosts") as err:
            open_raster(path)
    assert server.requests == []
    if form in ("vsicurl", "url", "relative-url"):
        assert "remote reads are off for this host (allowed: none)" in str(err.value)


def test_an_allowed_host_is_read_through_vsicurl_and_nothing_else_is_asked(tmp_path: Path) -> None:
    local = plain_tif(tmp_path / "dem.tif", value=42, dtype="float32")
    with RequestLog({"/data/dem.tif": local.read_bytes()}) as server:
        policy = RasterAccessPolicy(allowed_hosts=("127.0.0.1",))
        with open_raster(Path(f"{server.url}/data/dem.tif"), policy) as ds:
            assert ds.read(1).tolist() == np.full((64, 64), 42.0).tolist()
        with pytest.raises(RasterAccessError, match="allowed: localhost"):
            open_raster(
                Path(f"{server.url}/data/dem.tif"), RasterAccessPolicy(allowed_hosts=("localhost",))
            )
    assert server.requests and {p for _, p in server.requests} == {
        "/data/dem.tif"
    }  # no sidecar probe


def test_a_sidecar_ovr_that_is_a_vrt_is_ignored(tmp_path: Path) -> None:
    tif = plain_tif(tmp_path / "g.tif", value=7, size=256)
    raw_band_vrt(Path(f"{tif}.ovr"), secret_file(tmp_path / "secrets.txt"), size=128)
    with open_raster(tif) as ds:
        assert ds.overviews(1) == []
        decimated = ds.read(1, out_shape=(128, 128))
    assert (decimated == 7).all()  # GDAL would serve this read from the VRT overview: the secret


def test_a_geotiff_naming_an_external_overview_file_is_refused(tmp_path: Path) -> None:
    evil = raw_band_vrt(tmp_path / "evil.vrt", secret_file(tmp_path / "secrets.txt"), size=32)
    tif = tif_with_overview_file(tmp_path / "h.tif", evil)
    with pytest.raises(
        RasterAccessError, match=r"h\.tif: its metadata names an external overview file"
    ):
        open_raster(tif)


def test_devices_and_folders_are_not_opened(tmp_path: Path) -> None:
    with pytest.raises(RasterAccessError, match="not a regular file"):
        open_raster(Path("/dev/zero"))
    with pytest.raises(RasterAccessError, match="not a regular file"):
        open_raster(tmp_path)


def test_a_plain_geotiff_still_reads(tmp_path: Path) -> None:
    tif = plain_tif(tmp_path / "dem.tif", value=500, dtype="float32")
    out = read_acquisition(Acquisition(file=tif), DEM)
    assert out.data.shape == (1, 64, 64) and (out.data == 500).all() and out.valid.all()


# ------------------------------------------------------------------ item 8: huge rasters
def test_a_huge_sparse_geotiff_fails_on_open_before_any_allocation(tmp_path: Path) -> None:
    huge = huge_sparse_tif(tmp_path / "hr.tif")
    assert huge.stat().st_size < 2 * 2**20  # 10^12 pixels in under 2 MB
    tracemalloc.start()
    try:
        with pytest.raises(
            RasterTooLargeError,
            match=r"hr\.tif: 1000000 x 1000000 = 1e\+12 pixels, "
            r"more than data\.max_raster_pixels \(2147483648\)",
        ):
            read_acquisition(Acquisition(file=huge), get_sensor("hr"), require_valid=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


def test_pixel_and_band_limits_are_configurable(tmp_path: Path) -> None:
    bands = plain_tif(tmp_path / "many.tif", size=2, count=1025)
    with pytest.raises(
        RasterTooLargeError, match=r"1025 bands, more than data\.max_raster_bands \(1024\)"
    ):
        open_raster(bands)
    with open_raster(bands, RasterAccessPolicy(max_bands=1025)) as ds:
        assert ds.count == 1025
    small = plain_tif(tmp_path / "small.tif", size=64)
    with pytest.raises(RasterTooLargeError, match=r"64 x 64 = 4\.1e\+03 pixels"):
        open_raster(small, RasterAccessPolicy(max_pixels=4095))
    with open_dataset(small, RasterAccessPolicy(max_pixels=4095), check_size=False) as ds:
        assert ds.shape == (64, 64)


def test_limits_come_from_params() -> None:
    from skysense.config import load_config

    cfg = load_config(
        None,
        [
            "data.max_raster_pixels=100",
            "data.max_raster_bands=2",
            'data.remote.allowed_hosts=["data.example.org"]',
        ],
    )
    policy = RasterAccessPolicy.from_config(cfg.data)
    assert policy == RasterAccessPolicy(
        allowed_hosts=("data.example.org",), max_pixels=100, max_bands=2
    )
    default = RasterAccessPolicy.from_config(
        load_config(Path(__file__).parents[2] / "params.yaml").data
    )
    assert default == RasterAccessPolicy() and default.max_pixels >= 10980**2 * 4


# ------------------------------------------------------------------ item 9: messages and memory
def test_a_text_file_in_the_catalog_is_not_quoted(tmp_path: Path) -> None:
    text = secret_file(tmp_path / "scene.tif", repeat=1)
    with pytest.raises(RasterReadError, match=r"scene\.tif: is a text file, not a raster") as err:
        read_acquisition(Acquisition(file=text), DEM)
    assert "hunter2" not in str(err.value) and "db_password" not in str(err.value)


_PEAK = textwrap.dedent("""
    import resource, sys
    from skysense.data.readers import open_raster
    from skysense.core.errors import RasterReadError

    def peak_kb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    for warm in sys.argv[1:-1]:  # load GDAL's drivers first
        try:
            open_raster(warm)
        except RasterReadError:
            pass
    before = peak_kb()
    try:
        open_raster(sys.argv[-1])
    except RasterReadError as exc:
        message = str(exc)
    print(peak_kb() - before, message, sep="\\n")
""")


@pytest.mark.parametrize(
    "head", [b"II*\x00\x08\x00\x00\x00", b"password=hunter2 " * 4], ids=["tiff-header", "text"]
)
def test_a_400_mb_corrupt_file_costs_little_memory(tmp_path: Path, head: bytes) -> None:
    small = tmp_path / "small.tif"
    small.write_bytes(head + bytes(64))
    big = tmp_path / "big.tif"
    with open(big, "wb") as fh:  # sparse: 400 MB on paper, nothing on disk
        fh.write(head)
        fh.truncate(400 * 2**20)
    run = subprocess.run(
        [sys.executable, "-c", _PEAK, str(small), str(big)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    grown_kb, message = run.stdout.split("\n", 1)
    assert int(grown_kb) < 32 * 1024, f"opening the corrupt file grew the peak RSS by {grown_kb} kB"
    assert "big.tif" in message and ("400.0 MB" in message or "corrupt" in message)
    assert "hunter2" not in message
