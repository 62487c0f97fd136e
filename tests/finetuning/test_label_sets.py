"""Label inputs of fine-tuning: BigEarthNet-MM multi-label scenes and the EuroSAT folder layout
(real rasters from tests/data/real), the class list of params.yaml, splits by place.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from typer.testing import CliRunner

from skysense.cli import app
from skysense.core.sensors import S2_PRODUCT_BANDS
from skysense.data.downstream import SampleList
from skysense.finetuning.labels import LabelError, class_list, class_weights, split_by_place
from skysense.finetuning.settings import ClassSpec
from skysense.models.task_model import load_task_model

REAL_BEN = Path(__file__).resolve().parents[1] / "data" / "real" / "bigearthnet"
FAST = ["--set", "finetune.steps=2", "--set", "finetune.micro_batch=1", "--no-mlflow", "--json"]
S2_ONLY = ["--set", "finetune.modalities=[s2]"]
EUROSAT_BANDS = list(S2_PRODUCT_BANDS)  # EuroSAT-MS: all 13 bands


def _eurosat(root: Path, per_class: int = 3) -> Path:
    """A EuroSAT-MS folder (13 bands, 64 x 64 at 10 m) cut from a real BigEarthNet patch."""
    pid = "S2A_MSIL2A_20170613T101031_87_48"
    stack = []
    for b in EUROSAT_BANDS:
        with rasterio.open(REAL_BEN / pid / f"{pid}_{'B09' if b == 'B10' else b}.tif") as src:
            k = 120 // src.width
            stack.append(np.repeat(np.repeat(src.read(1), k, 0), k, 1))
            crs = src.crs
    full = np.stack(stack).astype(np.uint16)
    for c, cls in enumerate(("AnnualCrop", "Pasture")):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            r, col = 8 * i, 40 * c
            with rasterio.open(
                root / cls / f"{cls}_{i}.tif", "w", driver="GTiff", width=64, height=64, count=13,
                dtype="uint16", crs=crs, transform=from_origin(404400.0, 5342400.0, 10, 10),
            ) as dst:  # fmt: skip
                dst.write(full[:, r : r + 64, col : col + 64])
    return root


def test_bigearthnet_multilabel_finetune(tmp_path, ft_encoder):
    res = CliRunner().invoke(
        app,
        ["finetune", "--export", str(ft_encoder), "--downstream", str(REAL_BEN),
         "--out", str(tmp_path / "ben"), "--task", "classification", "--labels", "bigearthnet",
         "--set", "finetune.modalities=[s2,s1]", *FAST],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["summary"]["task"] == "multilabel"
    assert 0.0 <= report["metrics"]["map"] <= 1.0 and "map_frozen" in report["metrics"]
    _, config = load_task_model(tmp_path / "ben" / "export")
    assert config["task"] == "multilabel" and len(config["classes"]) == 3


def test_eurosat_folders_with_the_class_list_of_params(tmp_path, ft_encoder):
    root = _eurosat(tmp_path / "eurosat")
    classes = (
        "finetune.classes=[{name: AnnualCrop, colour: [230, 200, 40]}, "
        "{name: Pasture, colour: [60, 180, 60]}]"
    )
    res = CliRunner().invoke(
        app,
        ["finetune", "--export", str(ft_encoder), "--downstream", str(root),
         "--out", str(tmp_path / "es"), "--task", "classification", "--labels", "eurosat",
         "--set", classes, *S2_ONLY, *FAST],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)["metrics"]
    assert 0.0 <= metrics["acc"] <= 1.0
    _, config = load_task_model(tmp_path / "es" / "export")
    assert config["classes"] == ["AnnualCrop", "Pasture"]
    assert config["colours"] == [[230, 200, 40], [60, 180, 60]]


def test_a_class_list_that_does_not_match_the_labels_is_refused():
    with pytest.raises(LabelError, match="same names in the same order"):
        class_list(["water", "forest"], [ClassSpec(name="forest"), ClassSpec(name="water")], "x")
    assert [c.name for c in class_list(["a", "b"], [], "x")] == ["a", "b"]


def test_split_by_place_and_balanced_weights():
    masks = [np.full((2, 2), i % 3) for i in range(6)]
    items = [{"location": f"p{i % 3}", "mask": m} for i, m in enumerate(masks)]
    samples = SampleList(items, "segmentation", ["a", "b", "c"])
    split = split_by_place(samples, None, class_list(["a", "b", "c"], [], "x"), "x")
    assert split.heldout_locations == ["p2"]
    assert {s["location"] for s in split.heldout} == {"p2"}
    assert "p2" not in {s["location"] for s in split.train}
    with pytest.raises(LabelError, match="not places of"):
        split_by_place(samples, ["nowhere"], split.classes, "x")
    w = class_weights(split.train, "segmentation", 3, "balanced")
    assert w[2] == 0.0 and w[0] == pytest.approx(w[1]) and sum(w) == pytest.approx(2.0)


def test_catalog_label_rasters_over_chips(tmp_path, ft_encoder, ft_sample):
    """The sample's own catalog names a `labels:` raster per location: chip it, fine-tune on it."""
    sample = ft_sample.parent
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "data",
            "chip",
            "--catalog",
            str(sample / "catalog.yaml"),
            "--out",
            str(tmp_path / "chips"),
        ],
    )
    assert res.exit_code == 0, res.output
    names = [
        line.split(",", 1)[1]
        for line in (ft_sample / "segmentation" / "classes.csv").read_text().split()[1:]
    ]
    classes = "finetune.classes=[" + ", ".join(f"{{name: {n}}}" for n in names) + "]"
    args = ["finetune", "--export", str(ft_encoder), "--labels", "catalog",
            "--catalog", str(sample / "catalog.yaml"), "--chips", str(tmp_path / "chips"),
            "--out", str(tmp_path / "cat"), *S2_ONLY, *FAST]  # fmt: skip
    res = runner.invoke(app, [*args, "--set", classes])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["summary"]["task"] == "segmentation"
    assert 0.0 <= report["metrics"]["miou"] <= 1.0
    assert report["summary"]["heldout_locations"]  # the sample's catalog has 2 places
    # a class list shorter than the raster's ids is a named error, not a silent clip
    res = runner.invoke(app, [*args, "--set", "finetune.classes=[{name: a}, {name: b}]"])
    assert res.exit_code != 0 and "outside the class list" in res.output
