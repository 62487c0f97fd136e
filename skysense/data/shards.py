"""Chip shards: many chips per large binary file, addressed by ``(shard, offset, nbytes)``.

A record is self-describing::

    b"SKYCHIP1" | uint32 header length | JSON header | pad to 64 | array bytes (each 64-aligned)

The JSON header names each array's dtype, shape and offset, so a chip is read with one seek and one
read, without touching the rest of the shard (no index is loaded). The Parquet manifest next to the
shards (``manifest.parquet``) holds ``shard``, ``offset``, ``nbytes`` per sample id; a read checks
that the record found there is the chip asked for.

Shard files are never rewritten in place: a new generation of shards takes names no file in the
folder has (:func:`next_shard_index`), the manifest is then swapped atomically, and only then are
the shards it no longer names removed (:func:`remove_unreferenced_shards`). A crash at any point
leaves a manifest whose every record is where it says.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Self

import numpy as np
import pyarrow.parquet as pq

from skysense.core.errors import SkySenseError

MAGIC = b"SKYCHIP1"
ALIGN = 64
MANIFEST = "manifest.parquet"


class ShardError(SkySenseError):
    """A chips folder, manifest or shard record is missing or damaged."""


class ChipIdMismatchError(ShardError):
    """The record at a manifest's address holds another chip than the one asked for."""


def _pad(n: int) -> int:
    return (-n) % ALIGN


def encode_record(
    sample_id: str, arrays: dict[str, np.ndarray], attrs: dict[str, Any] | None = None
) -> bytes:
    """One chip as bytes (see module docstring)."""
    meta: dict[str, Any] = {"id": sample_id, "attrs": attrs or {}, "arrays": {}}
    offset = 0
    blobs: list[bytes] = []
    for name, arr in arrays.items():
        a = np.ascontiguousarray(arr)
        if a.dtype == np.bool_:  # masks: 1 bit per pixel
            meta["arrays"][name] = ["bits", list(a.shape), offset]
            raw = np.packbits(a.reshape(-1)).tobytes()
        else:
            meta["arrays"][name] = [a.dtype.str, list(a.shape), offset]
            raw = a.tobytes()
        blobs.append(raw + b"\0" * _pad(len(raw)))
        offset += len(raw) + _pad(len(raw))
    header = json.dumps(meta, separators=(",", ":")).encode()
    head = MAGIC + struct.pack("<I", len(header)) + header
    head += b"\0" * _pad(len(head))
    return head + b"".join(blobs)


def decode_record(
    buf: bytes | bytearray | memoryview, where: str = "record"
) -> tuple[str, dict[str, np.ndarray], dict[str, Any]]:
    """Bytes of one record -> ``(sample_id, arrays, attrs)``; arrays are views of ``buf``.

    Raises:
        ShardError: the bytes are not a chip record.
    """
    if bytes(buf[:8]) != MAGIC:
        raise ShardError(f"{where}: not a chip record (bad magic); re-run `skysense data chip`")
    (hlen,) = struct.unpack("<I", bytes(buf[8:12]))
    meta = json.loads(bytes(buf[12 : 12 + hlen]))
    base = 12 + hlen + _pad(12 + hlen)
    arrays = {}
    for name, (dtype, shape, off) in meta["arrays"].items():
        count = int(np.prod(shape)) if shape else 1
        if dtype == "bits":
            packed = np.frombuffer(buf, dtype=np.uint8, count=(count + 7) // 8, offset=base + off)
            arrays[name] = np.unpackbits(packed, count=count).view(np.bool_).reshape(shape)
        else:
            arrays[name] = np.frombuffer(
                buf, dtype=np.dtype(dtype), count=count, offset=base + off
            ).reshape(shape)
    return meta["id"], arrays, meta.get("attrs", {})


@dataclass(frozen=True)
class ShardRef:
    """Where a record lives: shard file name, byte offset, byte length."""

    shard: str
    offset: int
    nbytes: int


class ShardWriter:
    """Appends chip records to ``{prefix}-NNNNN.bin`` files of at most ``max_bytes`` each."""

    def __init__(
        self, out_dir: str | Path, prefix: str = "shard", max_bytes: int = 256 * 2**20
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix, self.max_bytes = prefix, max_bytes
        self.shards: list[str] = []
        self._fh: BinaryIO | None = None
        self._size = 0

    def _roll(self) -> None:
        if self._fh is not None:
            self._fh.close()
        name = f"{self.prefix}-{len(self.shards):05d}.bin"
        self.shards.append(name)
        self._fh = open(self.out_dir / name, "wb")  # noqa: SIM115 - held until the shard rolls over
        self._size = 0

    def write(
        self, sample_id: str, arrays: dict[str, np.ndarray], attrs: dict[str, Any] | None = None
    ) -> ShardRef:
        """Append one chip; returns where it went."""
        rec = encode_record(sample_id, arrays, attrs)
        if self._fh is None or (self._size > 0 and self._size + len(rec) > self.max_bytes):
            self._roll()
        assert self._fh is not None
        ref = ShardRef(self.shards[-1], self._size, len(rec))
        self._fh.write(rec)
        self._size += len(rec)
        return ref

    def close(self) -> list[str]:
        """Flush and close; returns the shard file names written."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        return list(self.shards)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ShardReader:
    """Reads chips by sample id from a chips folder, one seek + one read per chip.

    Opening reads only the manifest's id/shard/offset/nbytes columns; shard files are opened
    lazily, once per process (safe with DataLoader workers and forked processes).

    Raises:
        ShardError: the folder has no manifest, or a sample id is unknown.
    """

    def __init__(self, chips_dir: str | Path) -> None:
        self.chips_dir = Path(chips_dir)
        manifest = self.chips_dir / MANIFEST
        if not manifest.exists():
            raise ShardError(
                f"{manifest}: no chip manifest; run `skysense data chip --out {self.chips_dir}` "
                "first"
            )

        table = pq.read_table(manifest, columns=["sample_id", "shard", "offset", "nbytes"])
        cols = table.to_pydict()
        self._index = {
            sid: ShardRef(sh, int(off), int(nb))
            for sid, sh, off, nb in zip(
                cols["sample_id"], cols["shard"], cols["offset"], cols["nbytes"]
            )
        }
        self._files: dict[str, Any] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self._index)

    def ids(self) -> list[str]:
        """Sample ids in manifest order."""
        return list(self._index)

    def read(self, sample_id: str) -> dict[str, np.ndarray]:
        """Raw arrays of a chip (physical units; masks bool).

        Raises:
            ShardError: the id is not in the manifest, or its shard is missing or truncated.
            ChipIdMismatchError: the record at the manifest's address is another chip.
        """
        try:
            ref = self._index[sample_id]
        except KeyError:
            raise ShardError(f"{self.chips_dir}: no chip {sample_id!r} in the manifest") from None
        found, arrays, _ = self.read_at(ref)
        if found != sample_id:
            raise ChipIdMismatchError(
                f"{self.chips_dir / ref.shard}@{ref.offset}: holds chip {found!r}, but "
                f"{self.chips_dir / MANIFEST} puts {sample_id!r} there; the manifest and shards "
                f"are out of sync: re-run `skysense data chip --out {self.chips_dir}`"
            )
        return arrays

    def read_at(self, ref: ShardRef) -> tuple[str, dict[str, np.ndarray], dict[str, Any]]:
        """Decode the record at ``ref``: ``(sample_id, arrays, attrs)``."""
        if os.getpid() != self._pid:  # forked: never share file offsets with the parent
            self._files, self._pid = {}, os.getpid()
        fh = self._files.get(ref.shard)
        if fh is None:
            path = self.chips_dir / ref.shard
            if not path.exists():
                raise ShardError(
                    f"{path}: shard missing; restore it (dvc pull) or re-run `skysense data chip`"
                )
            fh = self._files[ref.shard] = open(path, "rb", buffering=0)  # noqa: SIM115 - cached handle, closed by close()
        buf = bytearray(ref.nbytes)
        n = os.preadv(fh.fileno(), [buf], ref.offset)
        if n != ref.nbytes:
            raise ShardError(
                f"{self.chips_dir / ref.shard}: truncated at offset {ref.offset}; re-run chipping"
            )
        return decode_record(buf, f"{ref.shard}@{ref.offset}")

    def close(self) -> None:
        """Close open shard files."""
        for fh in self._files.values():
            fh.close()
        self._files = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_files"] = {}
        return state


def next_shard_index(out_dir: str | Path, prefix: str = "shard") -> int:
    """The first ``NNNNN`` above every ``{prefix}-NNNNN.bin`` in ``out_dir`` (0 when none).

    A new shard generation numbered from here never takes the name of a file that exists, be it a
    shard the current manifest names or one left by a merge that crashed.
    """
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)\.bin$")
    found = [
        int(m.group(1))
        for f in Path(out_dir).glob(f"{prefix}-*.bin")
        if (m := pattern.match(f.name))
    ]
    return max(found, default=-1) + 1


def remove_unreferenced_shards(
    out_dir: str | Path, keep: set[str], prefix: str = "shard"
) -> list[str]:
    """Remove the ``{prefix}-*.bin`` files of ``out_dir`` that are not in ``keep``.

    Called after the manifest naming ``keep`` is in place: removes the previous generation and
    anything a crashed merge left behind.

    Returns:
        The names removed.
    """
    removed = []
    for f in sorted(Path(out_dir).glob(f"{prefix}-*.bin")):
        if f.name not in keep:
            f.unlink(missing_ok=True)
            removed.append(f.name)
    return removed


def sync_folder(folder: str | Path) -> None:
    """Fsync a folder, so that renames and new files in it survive a power loss."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def concatenate_shards(
    sources: list[Path],
    out_dir: Path,
    prefix: str = "shard",
    max_bytes: int = 256 * 2**20,
    start: int = 0,
) -> dict[Path, tuple[str, int]]:
    """Concatenate small shard files into few large ones (records stay byte-identical).

    The targets are ``{prefix}-NNNNN.bin`` from ``NNNNN = start``; an existing file of one of
    those names is refused, never overwritten (pass :func:`next_shard_index`). Each target is
    flushed to disk (fsync) before it is closed.

    Returns:
        Per source file, the target shard name and the byte offset it starts at; add that
        offset to the manifest offsets of its records.

    Raises:
        FileExistsError: a target name is taken.
    """
    moves: dict[Path, tuple[str, int]] = {}
    index, size, out = start, 0, None

    def finish(fh: Any) -> None:
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()

    try:
        for src in sources:
            n = src.stat().st_size
            if out is None or (size > 0 and size + n > max_bytes):
                if out is not None:
                    finish(out)
                    out = None
                name = f"{prefix}-{index:05d}.bin"
                index += 1
                out = open(out_dir / name, "xb")  # noqa: SIM115 - closed when the shard rolls over
                size = 0
            moves[src] = (f"{prefix}-{index - 1:05d}.bin", size)
            with open(src, "rb") as fh:
                shutil.copyfileobj(fh, out, 16 * 2**20)
            size += n
        if out is not None:
            finish(out)
            out = None
    finally:
        if out is not None:
            out.close()
    return moves
