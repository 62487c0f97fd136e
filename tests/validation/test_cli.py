"""``skysense validate --catalog FILE --out DIR --json`` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner

from skysense.cli import app

from .corpus import s2_data, write_tif

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str):
    return CliRunner().invoke(
        app, ["validate", *args, "--params", str(ROOT / "params.yaml"), "--json"]
    )


def _flat(text: str) -> str:
    """Output without whitespace: rich wraps long lines and folds long paths."""
    return "".join(text.split())


def test_good_catalog_exits_0_and_writes_the_gate_files(corpus, tmp_path: Path) -> None:
    catalog, expected = corpus
    out = tmp_path / "report"
    result = _run("--catalog", str(catalog), "--out", str(out))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["passed"] is True and summary["accepted_locations"] == 1
    assert summary["quarantined_items"] == len(expected)
    for name in (
        "validation.json",
        "quarantine.parquet",
        "accepted_catalog.yaml",
        "data_docs/index.html",
        "profiles.parquet",
        "location_profiles.parquet",
    ):
        assert (out / name).is_file(), name
    assert json.loads((out / "validation.json").read_text())["quarantined_items"] == len(expected)
    accepted = yaml.safe_load((out / "accepted_catalog.yaml").read_text())
    assert [loc["id"] for loc in accepted["locations"]] == ["alpha"]


def test_catalog_whose_locations_all_fail_exits_2_naming_file_and_reason(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    acqs = []
    for i in (1, 2, 3):
        write_tif(tmp_path / f"s2_{i}.tif", s2_data(rng), nodata=0)
        acqs.append({"date": f"2023-05-0{i}", "file": f"s2_{i}.tif", "offset": 0})
    catalog = tmp_path / "only_s2.yaml"
    catalog.write_text(
        yaml.safe_dump(
            {
                "locations": [
                    {
                        "id": "lonely",
                        "modalities": {"s2": {"sensor": "sentinel2", "acquisitions": acqs}},
                    }
                ]
            }
        )
    )
    out = tmp_path / "report"
    result = _run("--catalog", str(catalog), "--out", str(out))
    assert result.exit_code == 2, result.output
    err = _flat(result.stderr)
    assert _flat(str(catalog)) in err
    assert "only0of1locations" in err and "required_modalities" in err
    assert "Traceback" not in result.output
    assert json.loads(result.stdout)["passed"] is False  # --json still prints the summary
    assert (out / "quarantine.parquet").is_file()


def test_catalog_that_is_not_yaml_exits_2_without_traceback(tmp_path: Path) -> None:
    catalog = tmp_path / "broken.yaml"
    catalog.write_text("locations: [unclosed\n  - id: {a: [b\n")
    result = _run("--catalog", str(catalog), "--out", str(tmp_path / "report"))
    assert result.exit_code == 2, result.output
    err = _flat(result.stderr)
    assert _flat(str(catalog)) in err and "notavalidYAMLcatalog" in err
    assert "[unclosed" in result.stderr  # the YAML error is printed as is, not read as markup
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
