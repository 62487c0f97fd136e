"""Predict never overwrites an input, and a failed or killed run leaves no finished-looking output.

Issue #21 item 2: ``--output`` naming an input (directly, through a symlink or a hard link, or a
batch scene id that maps onto an input) turned a 10-band uint16 original into a float32
embedding; a run that died left a truncated GeoTIFF under the output's name.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from sigkill import kill_when_ready
from typer.testing import CliRunner

from skysense.cli import app
from skysense.core.output_paths import OutsideOutputError, UnsafeIdError
from skysense.inference.outputs import (
    OutputIsInputError,
    PredictOutputError,
    partial_path,
    prediction_outputs,
)
from skysense.inference.predict import predict_scene
from skysense.inference.scene import DatedRaster, PredictInputError, Scene


def pixelwise(arrays):
    """A context-free embedding: the last date's 10 bands and their mean -> 11 channels."""
    s2 = np.nan_to_num(arrays["s2"][:, -1])
    return np.concatenate([s2, s2.mean(axis=1, keepdims=True)], axis=1).astype(np.float32)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _own_copy(scene_files, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(scene_files["s2"], folder / "s2.tif"))


@pytest.mark.parametrize("alias", ["same", "symlink", "hardlink", "relative"])
def test_output_that_is_the_input_is_refused_and_the_input_kept(
    tmp_path, scene_files, alias, monkeypatch
):
    s2 = _own_copy(scene_files, tmp_path / "scene")
    before = sha256(s2)
    if alias == "same":
        output = s2
    elif alias == "symlink":
        output = tmp_path / "out" / "link.tif"
        output.parent.mkdir()
        output.symlink_to(s2)
    elif alias == "hardlink":
        output = tmp_path / "hard.tif"
        os.link(s2, output)
    else:  # the same file named another way: ./scene/../scene/s2.tif from tmp_path
        monkeypatch.chdir(tmp_path)
        output = Path("scene") / ".." / "scene" / "s2.tif"
    with (
        Scene([DatedRaster(s2, None)]) as scene,
        pytest.raises(OutputIsInputError, match=r"is the input .*s2\.tif.*destroy the input"),
    ):
        predict_scene(scene, pixelwise, output, window=32, overlap=8, block=64, progress=False)
    assert sha256(s2) == before
    with rasterio.open(s2) as src:
        assert (src.count, src.dtypes[0]) == (10, "uint16")


def test_cli_refuses_an_output_that_is_an_input_before_loading_any_model(
    tmp_path, scene_files, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # nothing of MLflow may land in the repository
    s2 = _own_copy(scene_files, tmp_path / "scene")
    before = sha256(s2)
    head = tmp_path / "seg_head.npz"
    np.savez(head, weight=np.ones((2, 11), np.float32), bias=np.zeros(2, np.float32))
    head_before = sha256(head)
    for output, input_named in ((s2, "s2.tif"), (head, "seg_head.npz")):
        result = CliRunner().invoke(
            app,
            [
                "predict",
                "--model",
                "models:/no-such-model@champion",
                "--input",
                f"2017-06-13={s2}",
                "--head",
                str(head),
                "--output",
                str(output),
            ],
        )
        assert result.exit_code == 2, result.output
        text = " ".join(result.output.split())
        assert f"is the input {tmp_path}" in text and input_named in text
        assert "Traceback" not in result.output
    assert sha256(s2) == before and sha256(head) == head_before


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_written_through_a_hidden_partial_file_and_replaced_at_the_end(tmp_path, scene_files):
    out = tmp_path / "pred" / "emb.tif"
    seen: list[list[str]] = []

    def watching(arrays):
        if out.parent.exists():
            seen.append(_listing(out.parent))
        return pixelwise(arrays)

    with Scene([DatedRaster(scene_files["s2"], None)]) as scene:
        summary = predict_scene(
            scene, watching, out, window=32, overlap=8, block=64, progress=False
        )
    assert summary.output == out and _listing(out.parent) == ["emb.tif"]  # nothing else left
    during = {name for names in seen for name in names}
    assert "emb.tif" not in during  # the output name appears only once it is complete
    partials = [n for n in during if n.startswith(".emb.tif.") and n.endswith(".partial")]
    assert partials and not any(n.endswith(".tif") for n in partials)
    with rasterio.open(out) as dst:
        assert (dst.count, dst.dtypes[0]) == (11, "float32")


def test_a_failed_run_keeps_the_previous_output_and_leaves_no_partial_file(tmp_path, scene_files):
    out = tmp_path / "emb.tif"
    with Scene([DatedRaster(scene_files["s2"], None)]) as scene:
        predict_scene(scene, pixelwise, out, window=32, overlap=8, block=64, progress=False)
    before = sha256(out)
    calls = {"n": 0}

    def failing(arrays):
        calls["n"] += 1
        if calls["n"] > 12:  # the first blocks are written by then
            raise RuntimeError("model crashed")
        return pixelwise(arrays)

    with (
        Scene([DatedRaster(scene_files["s2"], None)]) as scene,
        pytest.raises(RuntimeError, match="model crashed"),
    ):
        predict_scene(
            scene, failing, out, window=32, overlap=8, batch_size=1, block=64, progress=False
        )
    assert calls["n"] == 13
    assert sha256(out) == before and _listing(tmp_path) == ["emb.tif"]


KILLED_RUN = """
import sys, time
from pathlib import Path
import numpy as np
from skysense.inference.predict import predict_scene
from skysense.inference.scene import DatedRaster, Scene

s2, out, ready = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
calls = 0

def embed(arrays):
    global calls
    calls += 1
    if calls == 20:  # 2 of the 4 output blocks are written: announce it, then hang
        ready.write_text("written")
        time.sleep(120)
    x = np.nan_to_num(arrays["s2"][:, -1])
    return np.concatenate([x, x.mean(axis=1, keepdims=True)], axis=1).astype(np.float32)

with Scene([DatedRaster(s2, None)]) as scene:
    predict_scene(scene, embed, out, window=32, overlap=8, batch_size=1, block=64, progress=False)
"""


def test_a_killed_run_leaves_no_geotiff_under_the_output_name(tmp_path, scene_files):
    out, ready = tmp_path / "pred" / "emb.tif", tmp_path / "ready"
    code = kill_when_ready(
        [sys.executable, "-c", KILLED_RUN, str(scene_files["s2"]), str(out), str(ready)],
        ready,
        what="the prediction",
    )
    assert code == -signal.SIGKILL
    left = _listing(out.parent)
    assert not out.exists() and not any(name.endswith(".tif") for name in left)
    assert left and all(n.startswith(".emb.tif.") and n.endswith(".partial") for n in left)


def test_an_unwritable_output_is_a_named_error(tmp_path, scene_files):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with (
        Scene([DatedRaster(scene_files["s2"], None)]) as scene,
        pytest.raises(PredictOutputError, match=r"a-file/emb\.tif: cannot create its folder"),
    ):
        predict_scene(scene, pixelwise, blocker / "emb.tif", progress=False)


def test_partial_names_are_hidden_fresh_and_never_tif(tmp_path):
    names = {partial_path(tmp_path / "x.tif").name for _ in range(20)}
    assert len(names) == 20
    assert all(n.startswith(".x.tif.") and n.endswith(".partial") for n in names)


def test_batch_outputs_refuse_ids_that_map_onto_an_input_or_outside(tmp_path, scene_files):
    folder = tmp_path / "scenes"
    s2 = _own_copy(scene_files, folder)
    other = Path(shutil.copy(s2, folder / "zurich-01.tif"))
    # the scene "s2" would write scenes/s2.tif: its own input
    with pytest.raises(OutputIsInputError, match=r"s2\.tif: this output is the input"):
        prediction_outputs([("s2", [s2])], folder)
    # scene "a" is fine, but scene "zurich-01" would overwrite the input of scene "a"
    with pytest.raises(OutputIsInputError, match=r"zurich-01\.tif"):
        prediction_outputs([("a", [other]), ("zurich-01", [s2])], folder)
    for bad in ("../../x", "/abs/x", "a/b", "..", ".hidden", "", None):
        with pytest.raises(UnsafeIdError, match=r"\^\[A-Za-z0-9\]"):
            prediction_outputs([(bad, [s2])], tmp_path / "pred")
    with pytest.raises(PredictInputError, match="appears twice"):
        prediction_outputs([("a", [s2]), ("a", [other])], tmp_path / "pred")
    # a link inside the output folder that points elsewhere
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "away.tif").symlink_to(tmp_path / "elsewhere.tif")
    with pytest.raises(OutsideOutputError, match="outside the output folder"):
        prediction_outputs([("away", [s2])], tmp_path / "pred")
    assert prediction_outputs([("a", [s2]), ("b", [other])], tmp_path / "pred") == {
        "a": tmp_path / "pred" / "a.tif",
        "b": tmp_path / "pred" / "b.tif",
    }
    assert sorted(p.name for p in folder.iterdir()) == ["s2.tif", "zurich-01.tif"]
