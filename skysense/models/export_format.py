"""The export format of a SkySense encoder: ``model.safetensors`` + ``config.json`` in a folder.

``model.safetensors`` holds one encoder's fp32 weights (no pre-training heads); ``config.json``
holds ``format`` (``skysense-export/1``), ``preset``, ``overrides``, ``spec``, ``stats`` (the
normalisation of the chips it was trained on), ``data_version``, ``git_commit``, ``step``,
``encoder`` and ``mlflow_run_id``. Training writes it (:mod:`skysense.training.export`);
evaluation, the registry and predict read it with :func:`load_exported`, without DeepSpeed and
without unpickling anything.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from skysense.core.errors import SkySenseError
from skysense.models.skysense import SkySense, create_model

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT = "skysense-export/1"


class ExportError(SkySenseError):
    """An export folder or checkpoint cannot be read; the message names the file and the fix."""


def write_export(
    weights: dict[str, torch.Tensor], config: dict[str, Any], export_dir: Path
) -> Path:
    """Write ``weights`` and ``config`` as an export folder, whole or not at all.

    The folder is written beside ``export_dir`` and swapped in, so a reader never sees half.

    Returns:
        ``export_dir``.
    """
    export_dir = Path(export_dir)
    tmp = export_dir.with_name(export_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file(
        weights, str(tmp / WEIGHTS), metadata={"format": FORMAT, "step": str(config.get("step"))}
    )
    (tmp / CONFIG).write_text(json.dumps(config, indent=2, default=str))
    if export_dir.exists():
        old = export_dir.with_name(export_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(export_dir, old)
        os.replace(tmp, export_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, export_dir)
    return export_dir


def load_exported(export_dir: str | Path, device: str = "cpu") -> tuple[SkySense, dict[str, Any]]:
    """Load an exported encoder: ``(SkySense in eval mode, config dict)``; safetensors only.

    Raises:
        ExportError: the folder lacks ``model.safetensors``/``config.json`` or they do not match.
    """
    export_dir = Path(export_dir)
    weights, config_file = export_dir / WEIGHTS, export_dir / CONFIG
    for path in (weights, config_file):
        if not path.is_file():
            raise ExportError(f"{path} is missing; export a run with `skysense train` first")
    config = json.loads(config_file.read_text())
    model = create_model(config["preset"], **(config.get("overrides") or {}))
    state = load_file(str(weights), device=device)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ExportError(
            f"{weights} does not fit preset {config['preset']!r} with overrides "
            f"{config.get('overrides')}: {exc}"
        ) from exc
    return model.to(device).eval(), config
