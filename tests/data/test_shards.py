"""Shard records: a read checks the chip id; new shard generations never reuse a name on disk."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skysense.data.shards import (
    MANIFEST,
    ChipIdMismatchError,
    ShardReader,
    ShardWriter,
    concatenate_shards,
    next_shard_index,
    remove_unreferenced_shards,
)


def _manifest(folder, rows) -> None:
    pd.DataFrame(rows, columns=["sample_id", "shard", "offset", "nbytes"]).to_parquet(
        folder / MANIFEST
    )


def test_read_refuses_a_record_of_another_chip(tmp_path) -> None:
    # issue #21 item 3: asking for locA returned locB's arrays when the manifest pointed at it
    with ShardWriter(tmp_path, "shard") as writer:
        a = writer.write("locA_0000_0000", {"s2": np.full((1, 10, 4, 4), 1.0, np.float32)})
        b = writer.write("locB_0000_0000", {"s2": np.full((1, 10, 4, 4), 2.0, np.float32)})
    _manifest(
        tmp_path,
        [
            ("locA_0000_0000", b.shard, b.offset, b.nbytes),
            ("locB_0000_0000", b.shard, b.offset, b.nbytes),
        ],
    )
    reader = ShardReader(tmp_path)
    assert (reader.read("locB_0000_0000")["s2"] == 2.0).all()
    with pytest.raises(
        ChipIdMismatchError,
        match=r"shard-00000\.bin@\d+: holds chip 'locB_0000_0000', but .*"
        r"manifest\.parquet puts 'locA_0000_0000' there.*skysense data chip",
    ):
        reader.read("locA_0000_0000")
    _manifest(tmp_path, [("locA_0000_0000", a.shard, a.offset, a.nbytes)])
    assert (ShardReader(tmp_path).read("locA_0000_0000")["s2"] == 1.0).all()


def test_a_new_generation_takes_names_no_file_has(tmp_path) -> None:
    assert next_shard_index(tmp_path) == 0
    for name in (
        "shard-00000.bin",
        "shard-00007.bin",
        "shard-x.bin",
        "part-00042.bin",
        "shard-00009.tmp",
    ):
        (tmp_path / name).write_bytes(b"old")
    assert next_shard_index(tmp_path) == 8
    src = tmp_path / "src"
    src.mkdir()
    (src / "p0.bin").write_bytes(b"a" * 10)
    (src / "p1.bin").write_bytes(b"b" * 10)
    moves = concatenate_shards([src / "p0.bin", src / "p1.bin"], tmp_path, max_bytes=10, start=8)
    assert moves == {src / "p0.bin": ("shard-00008.bin", 0), src / "p1.bin": ("shard-00009.bin", 0)}
    assert (tmp_path / "shard-00007.bin").read_bytes() == b"old"
    with pytest.raises(FileExistsError):  # never overwrites a shard, even if asked to
        concatenate_shards([src / "p0.bin"], tmp_path, start=7)
    assert (tmp_path / "shard-00007.bin").read_bytes() == b"old"
    removed = remove_unreferenced_shards(tmp_path, {"shard-00008.bin", "shard-00009.bin"})
    assert removed == ["shard-00000.bin", "shard-00007.bin", "shard-x.bin"]
    assert sorted(p.name for p in tmp_path.glob("*.bin")) == [
        "part-00042.bin",
        "shard-00008.bin",
        "shard-00009.bin",
    ]
