"""The validation fan-out (per-location profiling tasks, one judging task) gives what
``skysense validate`` gives: on the thread runner and on a real Dask LocalCluster of 2 workers.

The catalog: the synthetic sample (2 locations, 32 px) plus one bad location ``zz-bad``: a copy of
the first location whose Sentinel-1 is dropped (location quarantined: required modality) and
whose first Sentinel-2 file is not a GeoTIFF (raster quarantined: unreadable).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import pickle
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from distributed import LocalCluster
from flow_project import bin_path

from flows.fanout import validate_fanout
from flows.runners import make_task_runner
from skysense.config import load_config
from skysense.validation.per_location import (
    LocationProfiles,
    load_catalog_for_validation,
    profile_location,
)

ROOT = Path(__file__).resolve().parents[2]
SMALL = [
    "data.sample.locations=1",
    "data.sample.heldout_locations=1",
    "data.sample.size_px=32",
    "data.sample.s2_dates=3",
    "data.sample.s1_dates=2",
]
BAD = "zz-bad"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path, dt.date]:
    """(catalog with a bad location, the ``skysense validate`` output folder, the day it ran)."""
    from skysense.data.synthetic.sample import write_sample

    tmp = tmp_path_factory.mktemp("validate-fanout")
    shutil.copy(ROOT / "params.yaml", tmp / "params.yaml")
    small = load_config(tmp / "params.yaml", SMALL)
    catalog = write_sample(tmp / "sample", small.data.sample, small.data.seed)
    raw = yaml.safe_load(catalog.read_text())
    bad = copy.deepcopy(raw["locations"][0])
    bad["id"], bad["split"] = BAD, "pretrain"
    del bad["modalities"]["s1"]
    broken = tmp / "sample" / "s2" / "zz-bad_broken.tif"
    broken.write_bytes(b"not a GeoTIFF\n" * 64)
    bad["modalities"]["s2"]["acquisitions"][0]["file"] = "s2/zz-bad_broken.tif"
    raw["locations"].append(bad)
    catalog.write_text(yaml.safe_dump(raw, sort_keys=False))

    today = dt.date.today()
    sets = [a for o in SMALL for a in ("--set", o)]
    ref = subprocess.run(
        [
            bin_path("skysense"),
            "validate",
            "--catalog",
            str(catalog),
            "--out",
            "ref",
            "--params",
            "params.yaml",
            *sets,
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ref.returncode == 0, ref.stdout[-2000:] + ref.stderr[-2000:]
    return catalog, tmp / "ref", today


def _same_validation(ours: Path, theirs: Path, summary: dict) -> None:
    """validation.json (all but timings and file paths) and the quarantine table are equal."""
    a, b = (json.loads((p / "validation.json").read_text()) for p in (ours, theirs))
    strip = lambda s: {k: v for k, v in s.items() if k not in ("timings_s", "files")}
    assert strip(a) == strip(b) == strip(json.loads(json.dumps(summary)))
    assert a["locations"] == {"total": 3, "quarantined": 1, "accepted": 2}
    assert a["rasters"]["quarantined"] >= 1 and a["passed"] is True
    qa, qb = (pd.read_parquet(p / "quarantine.parquet") for p in (ours, theirs))
    pd.testing.assert_frame_equal(qa, qb)
    assert set(qa.loc[qa["item_id"] == BAD, "failed_expectations"].map(list).sum()) >= {
        "required_modalities"
    }
    assert qa["item_id"].str.startswith(f"{BAD}/s2/0/").any()
    for name in ("profiles", "location_profiles"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(ours / f"{name}.parquet"), pd.read_parquet(theirs / f"{name}.parquet")
        )
    assert (ours / "accepted_catalog.yaml").read_text() == (
        theirs / "accepted_catalog.yaml"
    ).read_text()
    assert (ours / "data_docs" / "index.html").exists()


def test_location_profiles_pickle_and_hold_only_their_location(reference):
    catalog_path, _, _ = reference
    catalog, issues = load_catalog_for_validation(catalog_path)
    cfg = load_config(ROOT / "params.yaml", SMALL).validation
    prof = pickle.loads(pickle.dumps(profile_location(catalog, BAD, cfg, issues)))
    assert isinstance(prof, LocationProfiles) and prof.location == BAD
    assert set(prof.rasters["location"]) == {BAD}
    assert prof.location_row["location"].tolist() == [BAD] and prof.location_row[
        "n_acq_s1"
    ].tolist() == [0]
    unreadable = prof.rasters.loc[prof.rasters["read_error"].notna(), "item_id"].tolist()
    assert unreadable == [f"{BAD}/s2/0/data"]
    assert prof.reference is not None and prof.reference.modality == "s2"


def test_validate_fanout_on_threads_matches_the_validate_command(reference, tmp_path):
    catalog, ref, today = reference
    cfg = load_config(
        ROOT / "params.yaml", SMALL + ["pipeline.task_runner=thread", "pipeline.max_workers=2"]
    )
    summary = validate_fanout.with_options(task_runner=make_task_runner(cfg.pipeline))(
        str(catalog), str(tmp_path / "out"), cfg.model_dump(mode="json"), today
    )
    _same_validation(tmp_path / "out", ref, summary)


def test_validate_fanout_on_a_dask_cluster_matches_the_validate_command(reference, tmp_path):
    catalog, ref, today = reference
    cfg = load_config(ROOT / "params.yaml", SMALL)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        cfg.pipeline.dask_address = cluster.scheduler_address
        summary = validate_fanout.with_options(task_runner=make_task_runner(cfg.pipeline))(
            str(catalog), str(tmp_path / "out"), cfg.model_dump(mode="json"), today
        )
        executed = [w.state.executed_count for w in cluster.workers.values()]
    assert len(executed) == 2 and sum(executed) == 3  # one profiling task per location, on Dask
    _same_validation(tmp_path / "out", ref, summary)
