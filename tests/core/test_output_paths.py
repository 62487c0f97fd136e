"""Paths built from ids stay inside their output folder (issue #21 item 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from skysense.core.output_paths import (
    OutsideOutputError,
    UnsafeIdError,
    check_id,
    is_safe_id,
    path_inside,
)


def test_path_inside_accepts_names_below_the_folder(tmp_path):
    assert path_inside(tmp_path, "a.tif") == tmp_path / "a.tif"
    assert path_inside(tmp_path / "new", "seg", "x_r000_c000", "s2.tif") == (
        tmp_path / "new" / "seg" / "x_r000_c000" / "s2.tif"
    )
    linked = tmp_path / "linked-out"  # an output folder that is itself a symlink is fine
    (tmp_path / "real-out").mkdir()
    linked.symlink_to(tmp_path / "real-out")
    assert path_inside(linked, "a.tif") == linked / "a.tif"
    rel = Path("relative-out")
    assert path_inside(rel, "a.tif") == rel / "a.tif"


@pytest.mark.parametrize(
    "parts", [("../x.tif",), ("/abs/x.tif",), ("a", "..", "..", "x"), ("..",), (".",), ("",)]
)
def test_path_inside_refuses_what_leaves_the_folder(tmp_path, parts):
    out = tmp_path / "out"
    with pytest.raises(OutsideOutputError, match=rf"outside the output folder {out}"):
        path_inside(out, *parts)


def test_a_symlink_inside_the_folder_that_points_out_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(OutsideOutputError, match=r"sub/x\.tif: resolves to .*elsewhere/x\.tif"):
        path_inside(out, "sub", "x.tif")


def test_check_id():
    assert check_id("zurich-01") == "zurich-01" and is_safe_id("a.b_c-1")
    for bad in ("../../x", "/abs/x", "a..b", 7, None):
        assert not is_safe_id(bad)
        with pytest.raises(UnsafeIdError, match="scene id .* is not allowed"):
            check_id(bad, "scene id")
