"""Export: a DeepSpeed checkpoint (any ZeRO stage) to one fp32 safetensors file + config.json.

``OUT/export/model.safetensors`` holds one encoder (SkySense) only, without the pre-training
heads: the EMA teacher by default (``train.export_encoder``), as DINO-style pre-training does: the
teacher is a temporal ensemble of the student and was measured at or above the student in every
linear-probe run on the sample (bench/pretrain_gain.py); ``student`` exports the optimised weights.
``config.json`` holds ``preset``, ``overrides``, ``spec``, ``stats`` (the chips' ``stats.json``
normalisation), ``data_version``, ``git_commit``, ``step`` and ``encoder``.
:func:`skysense.models.export_format.load_exported` rebuilds the model from them without
DeepSpeed and without unpickling.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from skysense.core.errors import TrainingError
from skysense.core.lineage import data_version, git_commit
from skysense.models.ema import ema_modules
from skysense.models.export_format import FORMAT, ExportError, write_export
from skysense.training.checkpoint_safety import safe_load, verify_checkpoint

ENCODERS = ("teacher", "student")


def _encoder_module(pretrainer: torch.nn.Module, which: str) -> torch.nn.Module | None:
    if which == "student":
        return getattr(pretrainer, "student", None)
    try:
        return ema_modules(pretrainer)[0][1]  # registered only: a detached teacher is not saved
    except TrainingError:
        return None


def encoder_prefix(pretrainer: torch.nn.Module, which: str = "student") -> str:
    """State-dict prefix of the ``which`` encoder (``student``/``teacher``) inside the pre-trainer
    (e.g. ``"student."``, ``"teacher.encoder."``).
    """
    if which not in ENCODERS:
        raise ExportError(f"train.export_encoder is {which!r}; use one of {', '.join(ENCODERS)}")
    target = _encoder_module(pretrainer, which)
    for name, module in pretrainer.named_modules():
        if name and target is not None and module is target:
            return name + "."
    fix = " (set train.export_encoder: student)" if which == "teacher" else ""
    raise ExportError(
        f"{type(pretrainer).__name__} has no registered '{which}' encoder module to export{fix}"
    )


def consolidated_state_dict(checkpoint_dir: Path) -> dict[str, torch.Tensor]:
    """One fp32 state dict of the whole engine module from a checkpoint folder (a tag).

    ZeRO 1-3 checkpoints are merged from every rank's partitions with DeepSpeed's
    ``get_fp32_state_dict_from_zero_checkpoint``; tensors it leaves out (frozen parameters under
    ZeRO-1) come from the rank-0 module state; a stage-0 checkpoint holds the full module.
    """
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        raise ExportError(
            f"{checkpoint_dir} is not a checkpoint folder; run `skysense train` first"
        )
    model_file = checkpoint_dir / "mp_rank_00_model_states.pt"
    # weights_only: tensors and plain values only; DeepSpeed's own loader below unpickles fully,
    # so every file of the tag is checked first (a pickled object in any of them is refused).
    verify_checkpoint(checkpoint_dir)
    module = safe_load(model_file)["module"] if model_file.is_file() else None
    if any(checkpoint_dir.glob("*zero_pp_rank_*_optim_states.pt")):
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        state = dict(
            get_fp32_state_dict_from_zero_checkpoint(
                str(checkpoint_dir.parent), tag=checkpoint_dir.name
            )
        )
        # ZeRO-1 saves no frozen (requires_grad=False) parameters in its partitions, e.g. the EMA
        # teacher: stage 1 does not partition parameters, so the module state holds them whole.
        for key, value in (module or {}).items():
            if key not in state and value.numel() > 0:  # ZeRO-3 placeholders are empty
                state[key] = value
    else:
        if module is None:
            raise ExportError(f"{model_file} is missing: the checkpoint is incomplete")
        state = module
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def export_checkpoint(
    checkpoint_dir: Path,
    export_dir: Path,
    *,
    pretrainer: torch.nn.Module,
    preset: str,
    overrides: dict[str, Any],
    chips_dir: Path | None,
    step: int,
    run_id: str | None = None,
    encoder: str = "teacher",
) -> Path:
    """Write one encoder (``teacher`` or ``student``) of a checkpoint as ``model.safetensors`` +
    ``config.json``.

    The folder is written beside ``export_dir`` and swapped in, so a reader never sees half.
    ``preset`` and ``overrides`` name the model (``model.preset``, ``model.overrides``);
    ``run_id`` (the training run in MLflow) is recorded as ``mlflow_run_id``.

    Returns:
        ``export_dir``.
    """
    prefix = encoder_prefix(pretrainer, encoder)
    state = consolidated_state_dict(checkpoint_dir)
    weights = {
        k[len(prefix) :]: v.contiguous().clone() for k, v in state.items() if k.startswith(prefix)
    }
    if not weights:
        raise ExportError(f"{checkpoint_dir} holds no '{prefix}*' weights: nothing to export")
    student = getattr(pretrainer, "student", None)
    if not isinstance(student, torch.nn.Module):
        raise ExportError(
            f"{type(pretrainer).__name__} has no 'student' module: nothing to compare the "
            "checkpoint with; export a SkySensePretrainer"
        )
    expected = set(student.state_dict())
    if set(weights) != expected:
        missing = sorted(expected - set(weights))[:5]
        raise ExportError(
            f"{checkpoint_dir}: the {encoder} weights do not match the student's ({len(weights)} "
            "vs "
            f"{len(expected)} tensors; missing e.g. {missing}); the checkpoint is incomplete or "
            "from another model"
        )
    spec_dict = getattr(getattr(student, "spec", None), "to_dict", None)
    stats = None
    if chips_dir is not None and (Path(chips_dir) / "stats.json").is_file():
        stats = json.loads((Path(chips_dir) / "stats.json").read_text())
    config: dict[str, Any] = {
        "format": FORMAT,
        "preset": preset,
        "overrides": overrides,
        "spec": spec_dict() if callable(spec_dict) else None,
        "stats": stats,
        "data_version": data_version(chips_dir),
        "git_commit": git_commit(),
        "step": step,
        "encoder": encoder,
        "mlflow_run_id": run_id,
        "dtype": "float32",
        "n_parameters": int(sum(v.numel() for v in weights.values())),
        "checkpoint": str(Path(checkpoint_dir).resolve()),
    }
    return write_export(weights, config, export_dir)
