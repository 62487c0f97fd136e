"""The chip merge is crash-safe: at every point a crash can hit, some manifest reads every chip
right.

Issue #21 item 3: the merge deleted the old shards and wrote the new ones under the same names
before it swapped the manifest, so a merge that died left a manifest pointing into missing or
foreign shards. Here a chips folder of generation A is re-chipped from catalog B (same location
ids, other pixels) and the merge is made to crash (an exception raised from inside the writer, or
a real SIGKILL) at each step; the folder must then read exactly A (crash before the manifest swap)
or exactly B (after it), and the next merge must finish the job and leave only B's shards.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from sigkill import kill_when_ready

from skysense.data import chipping, shards
from skysense.data.catalog import Catalog
from skysense.data.chipping import PARTS, chip_catalog, chip_location, merge_manifests
from skysense.data.shards import MANIFEST, ShardReader

SHARD_BYTES = 4 * 2**20  # each location's part (~6 MB) becomes a shard of its own


def _catalog(make_location, root: Path, seeds: tuple[int, int]) -> Catalog:
    return Catalog(
        name="gen",
        root=root,
        locations=[
            make_location(root, "loc-a", seed=seeds[0]),
            make_location(root, "loc-b", x0=470000.0, seed=seeds[1], s2_dates=2),
        ],
    )


def _read_all(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    reader = ShardReader(folder)
    try:
        return {sid: {k: np.array(v) for k, v in reader.read(sid).items()} for sid in reader.ids()}
    finally:
        reader.close()


def _assert_reads(folder: Path, expected: dict[str, dict[str, np.ndarray]]) -> None:
    got = _read_all(folder)
    assert sorted(got) == sorted(expected)
    for sid, arrays in expected.items():
        assert sorted(got[sid]) == sorted(arrays), sid
        for name, value in arrays.items():
            np.testing.assert_array_equal(got[sid][name], value, err_msg=f"{sid}/{name}")


def _shards(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("shard-*.bin"))


@pytest.fixture(scope="module")
def generations(tmp_path_factory, request) -> dict[str, object]:
    """Generation A chipped and merged; generation B's parts (same ids, other pixels); B alone."""
    # this folder's conftest, by its plugin name (``import conftest`` is ambiguous across folders)
    data_conftest = request.config.pluginmanager.get_plugin(
        str(Path(__file__).with_name("conftest.py"))
    )
    tmp = tmp_path_factory.mktemp("generations")
    s = data_conftest.chip_settings(shard_bytes=SHARD_BYTES)
    a_dir = tmp / "a"
    chip_catalog(_catalog(data_conftest.make_location, tmp / "scenes-a", (1, 2)), a_dir, settings=s)
    b_parts = tmp / "b-parts"
    cat_b = _catalog(data_conftest.make_location, tmp / "scenes-b", (11, 12))
    for i, loc in enumerate(cat_b.locations):
        assert chip_location(loc, cat_b.root, b_parts, s, i).chips == 9
    b_alone = tmp / "b-alone"
    shutil.copytree(b_parts / PARTS, b_alone / PARTS)
    merge_manifests(b_alone, shard_bytes=SHARD_BYTES)
    old, new = _read_all(a_dir), _read_all(b_alone)
    assert sorted(old) == sorted(new) and len(old) == 18
    assert any(not np.array_equal(old[k]["s2"], new[k]["s2"]) for k in old)
    return {"a": a_dir, "b_parts": b_parts / PARTS, "old": old, "new": new}


def _rechip_setup(generations, tmp_path: Path) -> Path:
    """A chips folder holding generation A, with generation B's parts chipped into it."""
    out = tmp_path / "chips"
    shutil.copytree(generations["a"], out)
    shutil.copytree(generations["b_parts"], out / PARTS)
    return out


def _raise(*args, **kwargs):
    raise OSError(28, "No space left on device (injected)")


def _crash_while_copying(monkeypatch) -> None:
    """The second part copied into the new generation fails: one new shard is on disk."""
    real, calls = shutil.copyfileobj, {"n": 0}

    def copy(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            _raise()
        return real(*args, **kwargs)

    monkeypatch.setattr(shards.shutil, "copyfileobj", copy)


CRASHES_BEFORE_SWAP = {
    "while-copying-parts": _crash_while_copying,
    "while-staging-the-manifest": lambda mp: mp.setattr(chipping, "_stage_manifest", _raise),
    "after-new-shards-before-the-swap": lambda mp: mp.setattr(chipping, "_swap_manifest", _raise),
}


@pytest.mark.parametrize("crash", sorted(CRASHES_BEFORE_SWAP))
def test_a_merge_that_dies_before_the_swap_leaves_the_old_chips_readable(
    generations, tmp_path, monkeypatch, crash
) -> None:
    out = _rechip_setup(generations, tmp_path)
    manifest_before, shards_before = (out / MANIFEST).read_bytes(), _shards(out)
    with monkeypatch.context() as mp:
        CRASHES_BEFORE_SWAP[crash](mp)
        with pytest.raises(OSError, match="injected"):
            merge_manifests(out, shard_bytes=SHARD_BYTES)
    assert (out / MANIFEST).read_bytes() == manifest_before
    _assert_reads(out, generations["old"])
    assert _shards(out) == shards_before  # the failed generation removed its own shards
    assert not (out / f"{MANIFEST}.tmp").exists()
    # the parts are still there: the next merge completes the re-chip
    summary = merge_manifests(out, shard_bytes=SHARD_BYTES)
    assert summary.chips == 18 and _shards(out) == summary.shards
    assert not set(summary.shards) & set(shards_before)  # a new generation, under new names
    _assert_reads(out, generations["new"])


def test_a_merge_that_dies_after_the_swap_reads_the_new_chips(
    generations, tmp_path, monkeypatch
) -> None:
    out = _rechip_setup(generations, tmp_path)
    old_shards = _shards(out)
    with monkeypatch.context() as mp:
        mp.setattr(chipping, "remove_unreferenced_shards", _raise)
        with pytest.raises(OSError, match="injected"):
            merge_manifests(out, shard_bytes=SHARD_BYTES)
    _assert_reads(out, generations["new"])  # the new manifest, on the new shards
    assert set(old_shards) < set(_shards(out))  # the old generation is still on disk
    summary = merge_manifests(out, shard_bytes=SHARD_BYTES)  # a rerun removes what is unused
    assert _shards(out) == summary.shards and not set(summary.shards) & set(old_shards)
    _assert_reads(out, generations["new"])
    assert not (out / PARTS).exists()


KILLED_MERGE = """
import shutil, sys, time
from pathlib import Path
from skysense.data import shards
from skysense.data.chipping import merge_manifests

out, ready = Path(sys.argv[1]), Path(sys.argv[2])
real, calls = shutil.copyfileobj, [0]

def copy(*args, **kwargs):
    calls[0] += 1
    if calls[0] == 2:  # the first new shard is complete on disk: announce it, then hang
        ready.write_text("copied")
        time.sleep(120)
    return real(*args, **kwargs)

shards.shutil.copyfileobj = copy
merge_manifests(out, shard_bytes=int(sys.argv[3]))
"""


def test_a_killed_merge_leaves_the_old_chips_and_the_next_merge_cleans_up(
    generations, tmp_path
) -> None:
    out, ready = _rechip_setup(generations, tmp_path), tmp_path / "ready"
    manifest_before, old_shards = (out / MANIFEST).read_bytes(), _shards(out)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    code = kill_when_ready(
        [sys.executable, "-c", KILLED_MERGE, str(out), str(ready), str(SHARD_BYTES)],
        ready,
        what="the merge",
        env=env,
    )
    assert code == -signal.SIGKILL
    assert (out / MANIFEST).read_bytes() == manifest_before
    _assert_reads(out, generations["old"])
    orphans = sorted(set(_shards(out)) - set(old_shards))
    assert len(orphans) == 2  # the first new shard, complete, and the second, begun: no cleanup ran
    summary = merge_manifests(out, shard_bytes=SHARD_BYTES)
    assert not set(summary.shards) & set(orphans + old_shards)  # never reuses a name on disk
    assert _shards(out) == summary.shards
    _assert_reads(out, generations["new"])
