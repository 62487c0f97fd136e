"""Atomic DeepSpeed checkpoints: ``step-XXXXXXXX`` tags, a ``latest`` pointer, the last N kept.

A checkpoint is written under a temporary tag (``.tmp-step-XXXXXXXX``) by every rank, then rank
0 renames it to its final tag and replaces ``latest`` through a temporary file and
``os.replace``. A run killed at any moment leaves ``latest`` naming a complete checkpoint.
Beside DeepSpeed's files each rank writes ``trainer-rank{r}.json``: the step, its data-stream
position and its python/numpy/torch RNG states, so ``--resume`` continues exactly.
Checkpoints need a file system shared by all ranks (one folder, all ranks write into it).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skysense.core.errors import TrainingError
from skysense.training.checkpoint_safety import verify_checkpoint

LATEST = "latest"
TMP_PREFIX = ".tmp-"


def tag_for(step: int) -> str:
    """Checkpoint tag of an optimizer step."""
    return f"step-{step:08d}"


def read_latest(out_dir: Path) -> str | None:
    """Tag named by ``OUT/latest``, or None when no complete checkpoint exists."""
    pointer = Path(out_dir) / LATEST
    if not pointer.is_file():
        return None
    tag = pointer.read_text().strip()
    if not tag or not (Path(out_dir) / tag).is_dir():
        raise TrainingError(
            f"{pointer} names {tag!r}, which is not a checkpoint folder; delete {pointer} to start "
            "over or point it at an existing step-* folder"
        )
    return tag


def list_tags(out_dir: Path) -> list[str]:
    """Complete checkpoint tags in ``out_dir``, oldest first."""
    return sorted(p.name for p in Path(out_dir).glob("step-*") if p.is_dir())


def rng_state() -> dict[str, Any]:
    """This process's python, numpy and torch (and CUDA) RNG states as JSON-safe values."""
    np_state = np.random.get_state(legacy=True)
    if not isinstance(np_state, tuple):  # numpy gives a dict when the bit generator is not MT19937
        raise TrainingError(
            f"numpy's global RNG uses {np_state.get('bit_generator')}, not MT19937: its state "
            "cannot be checkpointed; do not replace numpy's global bit generator"
        )
    state: dict[str, Any] = {
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state().tolist()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states captured by :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(torch.tensor(state["cuda"], dtype=torch.uint8))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save_checkpoint(
    engine: Any, out_dir: Path, step: int, trainer_state: dict[str, Any], keep: int
) -> Path:
    """Save the engine and this rank's trainer state as ``tag_for(step)``; all ranks call it.

    Args:
        engine: the DeepSpeed engine.
        out_dir: checkpoints folder.
        step: optimizer steps done.
        trainer_state: this rank's JSON-safe state (stream position, metrics); RNG is added.
        keep: how many complete checkpoints to keep (oldest deleted).

    Returns:
        the final checkpoint folder.
    """
    import deepspeed.comm as dist

    out_dir = Path(out_dir)
    tag = tag_for(step)
    tmp_tag = TMP_PREFIX + tag
    rank = dist.get_rank()
    if rank == 0 and (out_dir / tmp_tag).exists():
        shutil.rmtree(out_dir / tmp_tag)
    engine.save_checkpoint(
        str(out_dir), tag=tmp_tag, client_state={"step": step}, save_latest=False
    )
    state = {**trainer_state, "step": step, "rng": rng_state()}
    _write_atomic(out_dir / tmp_tag / f"trainer-rank{rank}.json", json.dumps(state))
    dist.barrier()
    if rank == 0:
        final = out_dir / tag
        if final.exists():
            shutil.rmtree(final)
        os.replace(out_dir / tmp_tag, final)
        _write_atomic(out_dir / LATEST, tag)
        for old in list_tags(out_dir)[:-keep]:
            shutil.rmtree(out_dir / old, ignore_errors=True)
    dist.barrier()
    return out_dir / tag


def remove_partial(out_dir: Path) -> list[Path]:
    """Delete temporary checkpoint folders a killed run left behind (rank 0 only)."""
    removed = []
    for tmp in Path(out_dir).glob(TMP_PREFIX + "*"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def load_checkpoint(engine: Any, out_dir: Path) -> dict[str, Any] | None:
    """Load ``latest`` into the engine (weights, optimizer, lr schedule); all ranks call it.

    Returns:
        this rank's trainer state (RNG already restored), or None when there is no checkpoint.

    Raises:
        TrainingError: the checkpoint is incomplete or was written by a different rank count.
    """
    import deepspeed.comm as dist

    out_dir = Path(out_dir)
    tag = read_latest(out_dir)
    if tag is None:
        return None
    rank = dist.get_rank()
    state_file = out_dir / tag / f"trainer-rank{rank}.json"
    if not state_file.is_file():
        raise TrainingError(
            f"{state_file} is missing: checkpoint {tag} was written by fewer ranks; resume with "
            "the "
            "same --nproc as the run that wrote it"
        )

    verify_checkpoint(out_dir / tag)  # DeepSpeed unpickles fully: refuse pickled objects first
    load_path, _ = engine.load_checkpoint(
        str(out_dir), tag=tag, load_optimizer_states=True, load_lr_scheduler_states=True
    )
    if load_path is None:
        raise TrainingError(
            f"DeepSpeed could not load {out_dir / tag}; the checkpoint is incomplete"
        )
    state = json.loads(state_file.read_text())
    set_rng_state(state["rng"])
    return state
