"""The batch ``predict`` flow checks every scene's output before it loads the model or writes.

Issue #21 items 2 and 7: a scene id that maps its output onto an input (``<out>/<id>.tif`` being
a scene's raster) destroyed that input; an id like ``../../x`` wrote outside the predictions folder.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from flows.predict import predict
from skysense.inference.outputs import OutputIsInputError
from skysense.output_paths import UnsafeIdError

REAL_S2 = (Path(__file__).resolve().parents[1] / "data" / "real" / "inference"
           / "S2A_MSIL2A_20170613T101031_87_48_B02.tif")


def test_batch_ids_that_map_onto_inputs_or_outside_are_refused_before_any_write(tmp_path):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    s2 = Path(shutil.copy(REAL_S2, scenes / "zurich-01.tif"))
    before = hashlib.sha256(s2.read_bytes()).hexdigest()
    # predictions written next to the scenes: the scene "zurich-01" would overwrite its input
    with pytest.raises(OutputIsInputError, match=r"zurich-01\.tif: this output is the input"):
        predict(scenes=[{"id": "zurich-01", "s2": [f"2017-06-13={s2}"]}], out_dir=str(scenes),
                project_root=str(tmp_path), model_uri="models:/never-loaded@champion")
    with pytest.raises(UnsafeIdError, match=r"'\.\./\.\./x' is not allowed.*\^\[A-Za-z0-9\]"):
        predict(scenes=[{"id": "ok", "s2": [str(s2)]}, {"id": "../../x", "s2": [str(s2)]}],
                project_root=str(tmp_path), model_uri="models:/never-loaded@champion")
    assert hashlib.sha256(s2.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.rglob("*.tif")) == ["zurich-01.tif"]
