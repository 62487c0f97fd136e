"""Checkpoints are read with ``torch.load(weights_only=True)``: a pickled object in a checkpoint
file is refused before it can run (issue #21, item 13); DeepSpeed's own classes still load.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import torch

from skysense.training.checkpoint_safety import UnsafeCheckpointError, verify_checkpoint
from skysense.training.export import consolidated_state_dict

REPO = Path(__file__).resolve().parents[2]


class RunsCodeWhenUnpickled:
    """What a hostile checkpoint would hold: unpickling it calls ``os.system``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _stage0_checkpoint(folder: Path, **extra) -> Path:
    """A checkpoint tag as DeepSpeed stage 0 writes it (``mp_rank_00_model_states.pt``)."""
    folder.mkdir(parents=True)
    torch.save(
        {
            "module": {"encoder.weight": torch.arange(6.0).reshape(2, 3)},
            "ds_version": "0.19.8",
            "global_steps": 3,
            **extra,
        },
        folder / "mp_rank_00_model_states.pt",
    )
    return folder


def test_clean_checkpoint_and_deepspeed_classes_load(tmp_path):
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum

    tag = _stage0_checkpoint(tmp_path / "step-00000003")
    state = consolidated_state_dict(tag)
    assert torch.equal(state["encoder.weight"], torch.arange(6.0).reshape(2, 3))
    torch.save(
        {
            "optimizer_state_dict": {
                "loss_scaler": LossScaler(1.0),
                "zero_stage": ZeroStageEnum.gradients,
            }
        },
        tag / "zero_pp_rank_0_mp_rank_00_optim_states.pt",
    )
    assert [p.name for p in verify_checkpoint(tag)] == [
        "mp_rank_00_model_states.pt",
        "zero_pp_rank_0_mp_rank_00_optim_states.pt",
    ]


def test_pickled_object_in_checkpoint_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    tag = _stage0_checkpoint(
        tmp_path / "step-00000003", client_state={"note": RunsCodeWhenUnpickled(marker)}
    )
    with pytest.raises(
        UnsafeCheckpointError, match=r"mp_rank_00_model_states.pt: refused .*system"
    ):
        consolidated_state_dict(tag)
    with pytest.raises(UnsafeCheckpointError):
        verify_checkpoint(tag)
    assert not marker.exists()


def test_every_torch_load_in_the_code_uses_weights_only():
    calls = []
    for folder in ("skysense", "flows", "bench"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "load"
                    and ast.unparse(node.func.value) == "torch"
                ):
                    kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
                    calls.append(
                        (f"{path.relative_to(REPO)}:{node.lineno}", kw.get("weights_only"))
                    )
    assert calls, "no torch.load found: the scan is broken"
    assert [c for c in calls if c[1] != "True"] == []
