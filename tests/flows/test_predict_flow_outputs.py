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
from skysense.core.output_paths import UnsafeIdError
from skysense.inference.outputs import OutputIsInputError

REAL_S2 = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "real"
    / "inference"
    / "S2A_MSIL2A_20170613T101031_87_48_B02.tif"
)


def test_batch_ids_that_map_onto_inputs_or_outside_are_refused_before_any_write(tmp_path):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    s2 = Path(shutil.copy(REAL_S2, scenes / "zurich-01.tif"))
    before = hashlib.sha256(s2.read_bytes()).hexdigest()
    # predictions written next to the scenes: the scene "zurich-01" would overwrite its input
    with pytest.raises(OutputIsInputError, match=r"zurich-01\.tif: this output is the input"):
        predict(
            scenes=[{"id": "zurich-01", "s2": [f"2017-06-13={s2}"]}],
            out_dir=str(scenes),
            project_root=str(tmp_path),
            model_uri="models:/never-loaded@champion",
        )
    with pytest.raises(UnsafeIdError, match=r"'\.\./\.\./x' is not allowed.*\^\[A-Za-z0-9\]"):
        predict(
            scenes=[{"id": "ok", "s2": [str(s2)]}, {"id": "../../x", "s2": [str(s2)]}],
            project_root=str(tmp_path),
            model_uri="models:/never-loaded@champion",
        )
    assert hashlib.sha256(s2.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.rglob("*.tif")) == ["zurich-01.tif"]


def test_batch_writes_each_scene_to_its_id_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import pystac
    import rasterio

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "inference"))
    from scene_fixtures import stack_s2, write_random_export

    from skysense.config import SkySenseConfig, registration_settings
    from skysense.registry.export_registration import register_export
    from skysense.registry.promotion import promote
    from skysense.tracking.store import connect, ensure_experiment, sqlite_path

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = SkySenseConfig()
    cfg.registry.model_name = "skysense-batch"
    client = connect(uri)
    exp = ensure_experiment(client, "batch", tmp_path / "art", uri)
    register_export(
        client,
        registration_settings(cfg),
        write_random_export(tmp_path / "export"),
        {"linear_acc": 0.5},
        experiment_id=exp,
        sqlite_db=sqlite_path(uri),
    )
    promote(client, "skysense-batch", cfg.registry.policy, sqlite_db=sqlite_path(uri))
    s2 = stack_s2(tmp_path / "s2.tif")
    out = tmp_path / "predictions"
    results = predict(
        scenes=[
            {"id": "zurich-01", "s2": [f"2017-06-13={s2}"]},
            {"id": "zurich-02", "s2": [str(s2)]},
        ],
        overrides=["predict.window=32", "predict.overlap=8"],
        out_dir=str(out),
        project_root=str(tmp_path),
        model_uri="models:/skysense-batch@champion",
    )
    assert [r["id"] for r in results] == ["zurich-01", "zurich-02"]
    assert [r["output"] for r in results] == [
        str(out / "zurich-01.tif"),
        str(out / "zurich-02.tif"),
    ]
    assert sorted(p.name for p in out.iterdir()) == [
        "_items.json",
        "zurich-01.json",
        "zurich-01.tif",
        "zurich-02.json",
        "zurich-02.tif",
    ]
    collection = pystac.ItemCollection.from_file(str(out / "_items.json"))
    assert [i.id for i in collection] == ["zurich-01", "zurich-02"]
    assert {i.properties["skysense:model_version"] for i in collection} == {1}
    assert collection.items[0].assets["data"].href == str(out / "zurich-01.tif")
    with rasterio.open(out / "zurich-01.tif") as dst:
        assert (dst.width, dst.height, dst.count, dst.dtypes[0]) == (120, 120, 192, "float32")
