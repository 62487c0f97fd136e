"""``predict``'s input scenes open under the raster access policy (issue #21, items 6, 8, 9).

A scene list is as untrusted as a catalog: a VRT given as ``--input`` must not read a local file
as pixels nor reach the network, a raster claiming 10^12 pixels must fail on open, and errors
must not quote file content. The Sentinel-2 stack is the real BigEarthNet patch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scene_fixtures import stack_s2
from untrusted_rasters import (
    SECRET,
    RequestLog,
    curl_vrt,
    huge_sparse_tif,
    raw_band_vrt,
    secret_file,
)

from skysense.core.errors import RasterReadError
from skysense.data.raster_access import RasterAccessError, RasterTooLargeError
from skysense.inference.scene import Scene, parse_dated


def test_a_vrt_input_reading_a_local_file_is_refused(tmp_path: Path) -> None:
    vrt = raw_band_vrt(tmp_path / "s2.vrt", secret_file(tmp_path / "secrets.txt"))
    with pytest.raises(RasterAccessError, match=r"s2\.vrt: an XML file") as err:
        Scene([parse_dated(f"2023-05-01={vrt}")])
    assert "hunter2" not in str(err.value)


def test_inputs_reaching_the_network_send_no_request(tmp_path: Path) -> None:
    s2 = stack_s2(tmp_path / "s2.tif")
    with RequestLog({"/s1.tif": s2.read_bytes()}) as server:
        vrt = curl_vrt(tmp_path / "s1.vrt", f"{server.url}/s1.tif")
        with pytest.raises(RasterAccessError, match="VRT"):
            Scene([parse_dated(str(s2))], s1=[parse_dated(str(vrt))])
        with pytest.raises(RasterAccessError, match=r"data\.remote\.allowed_hosts"):
            Scene([parse_dated(str(s2))], s1=[parse_dated(f"/vsicurl/{server.url}/s1.tif")])
        with pytest.raises(RasterAccessError, match=r"data\.remote\.allowed_hosts"):
            Scene([parse_dated(str(s2))], hr=Path(f"{server.url}/s1.tif"))
    assert server.requests == []


def test_a_huge_input_fails_on_open(tmp_path: Path) -> None:
    huge = huge_sparse_tif(tmp_path / "huge.tif", count=10)
    with pytest.raises(RasterTooLargeError, match=r"huge\.tif: 1000000 x 1000000 = 1e\+12 pixels"):
        Scene([parse_dated(str(huge))])
    with pytest.raises(RasterTooLargeError, match="data.max_raster_pixels"):
        Scene(
            [parse_dated(str(stack_s2(tmp_path / "s2.tif")))],
            hr=huge_sparse_tif(tmp_path / "hr.tif"),
        )


def test_a_text_input_is_named_not_quoted(tmp_path: Path) -> None:
    text = secret_file(tmp_path / "s2.tif", repeat=1)
    with pytest.raises(RasterReadError, match=r"s2\.tif: is a text file") as err:
        Scene([parse_dated(str(text))])
    assert SECRET not in str(err.value) and "hunter2" not in str(err.value)


def test_a_plain_geotiff_scene_still_reads(tmp_path: Path) -> None:
    with Scene([parse_dated(f"2017-06-13={stack_s2(tmp_path / 's2.tif')}")]) as scene:
        arrays = scene.read_window(0, 0, 16)
    assert (
        arrays["s2"].shape == (1, 1, 10, 16, 16)
        and np.isfinite(arrays["s2"][0, 0, :, 15, 15]).all()
    )
