"""A checkpoints folder (``skysense train --out``): one writer, a fingerprint, resume or set aside.

- **One writer.** Training into ``OUT`` holds an exclusive lock on ``<parent>/.<name>.lock``
  beside the folder (:mod:`skysense.core.file_lock`), so a second run into the same folder waits or
  fails with a message naming the lock file and the holder; the lock lives outside ``OUT`` so
  that setting the folder aside (below) or DVC never moves or deletes it under its holder.
- **A fingerprint.** ``OUT/fingerprint.json`` records what the checkpoints are made from: the
  ``model`` and ``train`` settings (all but ``checkpoint_every``/``keep_checkpoints``, which do
  not change a single weight), the resolved device, backend, precision and process count, and
  the chips (sha256 of ``manifest.parquet`` and ``stats.json``; name, size and modification time
  of every other file). The code version is not part of it.
- **Resume or set aside.** A rerun (DVC reruns the ``train`` stage after a kill, a failure or a
  Prefect retry; the folder is a ``persist: true`` output, so DVC leaves it in place) resumes
  from ``latest`` when the fingerprint matches. When it does not (or there is none), the whole
  folder is renamed to ``OUT.stale-<UTC time>`` beside it, never deleted, and the run starts
  clean in a new, empty ``OUT``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from skysense.core.errors import TrainingError
from skysense.core.file_lock import FileLock
from skysense.core.lineage import file_sha256
from skysense.training.checkpoints import read_latest

if TYPE_CHECKING:  # pragma: no cover
    from skysense.training.engine import Runtime
    from skysense.training.job import TrainingJob

FINGERPRINT = "fingerprint.json"
FORMAT = "skysense-checkpoints/1"
STALE_INFIX = ".stale-"
#: ``train`` settings that change when and how many checkpoints are kept, not the weights.
RESUME_NEUTRAL = frozenset({"checkpoint_every", "keep_checkpoints"})
#: chips files whose content is hashed; the others (shards) by name, size and mtime.
HASHED_CHIPS_FILES = ("manifest.parquet", "stats.json")
Mode = Literal["auto", "resume", "fresh"]


def lock_path(out_dir: Path) -> Path:
    """The lock file of a checkpoints folder: ``<parent>/.<name>.lock``, beside it."""
    out_dir = Path(out_dir).absolute()
    return out_dir.with_name(f".{out_dir.name}.lock")


def folder_lock(out_dir: Path, wait_s: float = 0.0) -> FileLock:
    """The exclusive lock a training run holds on ``out_dir`` (see
    :mod:`skysense.core.file_lock`).
    """
    return FileLock(
        lock_path(out_dir), purpose=f"training into {Path(out_dir).absolute()}", wait_s=wait_s
    )


def chips_fingerprint(chips_dir: Path | None) -> dict[str, Any]:
    """What identifies a chips folder: content hashes of its manifest and stats, and the name,
    size and modification time (ns) of every other file (the shards, too large to hash at
    every start).
    """
    if chips_dir is None:
        return {}
    chips_dir = Path(chips_dir)
    hashed: dict[str, str] = {}
    files: dict[str, list[int]] = {}
    for path in sorted(p for p in chips_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(chips_dir).as_posix()
        if rel in HASHED_CHIPS_FILES:
            hashed[rel] = file_sha256(path)
        else:
            st = path.stat()
            files[rel] = [st.st_size, st.st_mtime_ns]
    return {"sha256": hashed, "files": files}


def run_fingerprint(
    job: TrainingJob, chips_dir: Path | None, runtime: Runtime, world_size: int
) -> dict[str, Any]:
    """The fingerprint of a training run (see module docstring), as a JSON-safe dict."""
    settings = job.model_dump(mode="json")
    train = {k: v for k, v in settings["train"].items() if k not in RESUME_NEUTRAL | {"nproc"}}
    return {
        "format": FORMAT,
        "params": {"model": settings["model"], "train": train},
        "runtime": {
            "device": runtime.device,
            "backend": runtime.backend,
            "precision": runtime.precision,
            "world_size": world_size,
        },
        "chips": chips_fingerprint(chips_dir),
    }


def read_fingerprint(out_dir: Path) -> dict[str, Any] | None:
    """``OUT/fingerprint.json``, or None when absent or unreadable."""
    path = Path(out_dir) / FINGERPRINT
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def write_fingerprint(out_dir: Path, fingerprint: dict[str, Any]) -> Path:
    """Write ``OUT/fingerprint.json`` atomically (temporary file, fsync, ``os.replace``)."""
    path = Path(out_dir) / FINGERPRINT
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(fingerprint, indent=2, sort_keys=True))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flat(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): tree}


def differences(old: dict[str, Any], new: dict[str, Any], limit: int = 5) -> list[str]:
    """What differs between two fingerprints, in words (at most ``limit`` items, then a count)."""
    found: list[str] = []
    a, b = (
        _flat({k: v for k, v in old.items() if k != "chips"}),
        _flat({k: v for k, v in new.items() if k != "chips"}),
    )
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<unset>") != b.get(key, "<unset>"):
            found.append(f"{key}: {a.get(key, '<unset>')!r} -> {b.get(key, '<unset>')!r}")
    old_chips, new_chips = old.get("chips") or {}, new.get("chips") or {}
    if (old_chips.get("sha256"), old_chips.get("files")) != (
        new_chips.get("sha256"),
        new_chips.get("files"),
    ):
        files_a = {**(old_chips.get("sha256") or {}), **(old_chips.get("files") or {})}
        files_b = {**(new_chips.get("sha256") or {}), **(new_chips.get("files") or {})}
        changed = sorted(k for k in set(files_a) | set(files_b) if files_a.get(k) != files_b.get(k))
        found.append(f"chips changed ({len(changed)} files, e.g. {', '.join(changed[:3])})")
    if len(found) > limit:
        found = [*found[:limit], f"and {len(found) - limit} more"]
    return found


@dataclass(frozen=True)
class RunFolderPlan:
    """What a run does with its checkpoints folder.

    Attributes:
        resume: continue from ``latest`` (or from step 0 when the matching run saved none yet).
        latest: the checkpoint tag resumed from, if any.
        set_aside: where the previous folder was moved, if it was.
        reason: one line for the user.
    """

    resume: bool
    latest: str | None
    set_aside: Path | None
    reason: str


def _has_content(out_dir: Path) -> bool:
    return out_dir.is_dir() and any(out_dir.iterdir())


def set_aside(out_dir: Path) -> Path:
    """Rename ``out_dir`` to ``<out_dir>.stale-<UTC time>`` (a new name; nothing is deleted) and
    create a new, empty ``out_dir``.

    Raises:
        TrainingError: the folder cannot be renamed (e.g. a mount point).
    """
    out_dir = Path(out_dir)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = out_dir.with_name(f"{out_dir.name}{STALE_INFIX}{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = out_dir.with_name(f"{out_dir.name}{STALE_INFIX}{stamp}-{n}")
    try:
        os.rename(out_dir, target)
    except OSError as exc:
        raise TrainingError(
            f"{out_dir} holds checkpoints of another run and cannot be renamed to {target} "
            f"({exc.strerror}); move it away yourself, or choose another --out"
        ) from exc
    out_dir.mkdir(parents=True)
    return target


def prepare_run_folder(
    out_dir: Path, fingerprint: dict[str, Any], mode: Mode = "auto"
) -> RunFolderPlan:
    """Decide whether a run resumes, and set a folder of another run aside (hold its lock).

    Args:
        out_dir: the checkpoints folder (created when missing).
        fingerprint: this run's :func:`run_fingerprint`.
        mode: ``auto`` resumes a matching folder and sets any other aside; ``resume`` resumes a
            matching folder (or one without a fingerprint, on the caller's word) and refuses a
            different one; ``fresh`` always sets a non-empty folder aside.

    Raises:
        TrainingError: ``mode="resume"`` and the folder was made with other settings or chips.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not _has_content(out_dir):
        write_fingerprint(out_dir, fingerprint)
        return RunFolderPlan(False, None, None, f"starting a new run in {out_dir}")
    recorded = read_fingerprint(out_dir)
    if mode != "fresh" and recorded == fingerprint:
        latest = read_latest(out_dir)
        reason = (
            f"resuming from {latest}"
            if latest
            else f"resuming {out_dir} from step 0 (the matching run saved no checkpoint yet)"
        )
        return RunFolderPlan(True, latest, None, reason)
    if mode == "resume":
        if recorded is None:
            latest = read_latest(out_dir)
            write_fingerprint(out_dir, fingerprint)
            return RunFolderPlan(
                True,
                latest,
                None,
                f"resuming from {latest} (--resume; {out_dir} had no "
                f"{FINGERPRINT} to check it against)",
            )
        raise TrainingError(
            f"{out_dir} holds checkpoints of another run "
            f"({'; '.join(differences(recorded, fingerprint))}); "
            "run without --resume to set them aside and start clean, or use the settings and chips "
            f"recorded in {out_dir / FINGERPRINT}"
        )
    why = (
        "--fresh"
        if mode == "fresh"
        else f"no {FINGERPRINT}"
        if recorded is None
        else "; ".join(differences(recorded, fingerprint))
    )
    moved = set_aside(out_dir)
    write_fingerprint(out_dir, fingerprint)
    return RunFolderPlan(
        False,
        None,
        moved,
        f"starting a new run in {out_dir}; the previous one ({why}) is kept in {moved}",
    )
