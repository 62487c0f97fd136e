"""Location ids become file names, so a catalog with a path-like id is refused when it is parsed.

Issue #21 item 7: a location or scene id like ``../../x`` or ``/abs/x`` wrote outside ``--out``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from skysense.config import load_config
from skysense.core.errors import CatalogError
from skysense.core.output_paths import SAFE_ID_PATTERN, UnsafeIdError
from skysense.data.catalog import load_catalog
from skysense.data.synthetic.downstream import write_scene_chips
from skysense.data.synthetic.sample import write_scene
from skysense.data.synthetic.scenes import sites_for, synthesize_scene

BAD_IDS = [
    "../../x",
    "/abs/x",
    "a/b",
    "..",
    "a..b",
    ".hidden",
    "-dash",
    "with space",
    "",
    "x" * 129,
    "zürich",
    "a\\b",
    "x\n",
]
GOOD_IDS = ["zurich-01", "ch.zurich_plateau-2", "A" * 128, "0"]


def _catalog(folder: Path, loc_id: str, tif: Path) -> Path:
    path = folder / "catalog.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "locations": [
                    {
                        "id": loc_id,
                        "modalities": {
                            "s2": {
                                "sensor": "sentinel2",
                                "acquisitions": [
                                    {"date": "2023-04-02", "file": str(tif), "offset": 0}
                                ],
                            }
                        },
                    }
                ],
            }
        )
    )
    return path


@pytest.mark.parametrize("loc_id", BAD_IDS)
def test_a_path_like_location_id_is_refused_naming_file_id_and_pattern(tmp_path, tif, loc_id):
    raster = tif(tmp_path / "s2.tif", np.ones((10, 8, 8), "uint16"))
    path = _catalog(tmp_path, loc_id, raster)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: invalid catalog")
    assert repr(loc_id) in msg and SAFE_ID_PATTERN in msg and "no '..'" in msg


@pytest.mark.parametrize("loc_id", GOOD_IDS)
def test_plain_ids_load(tmp_path, tif, loc_id):
    raster = tif(tmp_path / "s2.tif", np.ones((10, 8, 8), "uint16"))
    assert load_catalog(_catalog(tmp_path, loc_id, raster)).locations[0].id == loc_id


def test_the_chip_command_refuses_the_catalog_and_writes_nothing(tmp_path, tif):
    from skysense.cli import app

    raster = tif(tmp_path / "s2.tif", np.ones((10, 32, 32), "uint16"))
    (tmp_path / "cat").mkdir()
    path = _catalog(tmp_path / "cat", "../../escaped", raster)
    out = tmp_path / "deep" / "chips"
    res = CliRunner().invoke(app, ["data", "chip", "--catalog", str(path), "--out", str(out)])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "'../../escaped'" in text and "is not allowed" in text
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["catalog.yaml", "s2.tif"]


@pytest.fixture(scope="module")
def escaping_scene():
    """A real synthetic scene whose id tries to climb out of the output folder."""
    cfg = load_config(
        Path(__file__).parents[2] / "params.yaml",
        ["data.sample.size_px=32", "data.sample.s2_dates=2", "data.sample.s1_dates=2"],
    ).data.sample
    site, split = sites_for(0, 1)[0]
    scene = synthesize_scene(site, split, 0, cfg, 0)
    return dataclasses.replace(scene, site=dataclasses.replace(scene.site, name="../../escaped"))


def test_the_sample_and_downstream_writers_refuse_an_escaping_id(tmp_path, escaping_scene):
    out = tmp_path / "a" / "b" / "sample"
    with pytest.raises(UnsafeIdError, match=r"'\.\./\.\./escaped' is not allowed"):
        write_scene(escaping_scene, out)
    with pytest.raises(UnsafeIdError, match=r"'\.\./\.\./escaped' is not allowed"):
        write_scene_chips(escaping_scene, out / "downstream", 16)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
