"""Import the official SkySense weights, in either released form, as a SkySense export.

The release comes two ways:

* **per module**, one file each: the HR Swin V2 backbone with a ``backbone.`` prefix (and maybe
  task heads beside it); the Sentinel-2 and Sentinel-1 ViTs with bare mmseg names
  (``patch_embed.projection.*``, ``layers.N.ln1/ln2/attn.attn.in_proj_*/ffn.layers.*``,
  ``cls_token``, ``pos_embed``), the S2 file also holding ``ctpe``; the two lifting heads with
  bare ``decoder.0.*``; the fusion with bare ``porj_linear.*``, ``cls_token``, ``layers.*``;
* **combined**, one state dict with ``backbone_gep.``, ``backbone_s2.``, ``backbone_s1.``,
  ``head_s2.``, ``head_s1.``, ``fusion.``, ``ctpe`` and heads that are not encoder parts.

:func:`identify_part` says which part a file is (from its keys; the two lifting heads, which
have the same keys and shapes, from the file name, or from ``PART=PATH``), :func:`to_combined`
puts the parts under the combined prefixes, and
:func:`skysense.models.official_checkpoint.load_official_state_dict` maps every key strictly.
The imported model has what the official one has and nothing more: no modality embedding, no
DEM token, and no geo-context prototypes (the release holds no prototype bank, so the read-out
is skipped, as for a batch without a location). :func:`import_official` writes the result as a
``skysense-export/1`` folder, which ``evaluate``, ``register``, ``finetune`` and ``predict``
read like a trained one.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor

from skysense.core.lineage import file_sha256, git_commit
from skysense.models.export_format import FORMAT, write_export
from skysense.models.official_checkpoint import (
    CheckpointMappingError,
    OfficialLoadReport,
    load_official_state_dict,
    unwrap,
)
from skysense.models.presets import resolve_spec
from skysense.models.skysense import SkySense

#: Released part -> its prefix in the combined state dict ("" for the date encoding).
PART_PREFIX = {
    "hr": "backbone_gep.",
    "s2": "backbone_s2.",
    "s1": "backbone_s1.",
    "s2_head": "head_s2.",
    "s1_head": "head_s1.",
    "fusion": "fusion.",
    "ctpe": "",
}
PARTS = ("combined",) + tuple(PART_PREFIX)
#: What the official model does not have: switched off in the imported model's overrides.
OFFICIAL_OVERRIDES = {
    "dem": False,
    "modality_embed": False,
    "geo_context": False,
    "date_smoothing_days": 0.0,  # the released table is read as it is, day by day
}
COMBINED_PREFIXES = tuple(p for p in PART_PREFIX.values() if p) + ("head_gep",)


@dataclass
class ReleaseFile:
    """One file of the release: where it is, which part it holds, its state dict."""

    path: Path
    part: str
    state: dict[str, Tensor]


def read_state(path: Path) -> dict[str, Tensor]:
    """A release file's state dict (``.pth``/``.pt``/``.bin``: tensors only, no code is
    unpickled; ``.safetensors``); ``model``/``state_dict`` wrappers and ``module.`` removed.

    Raises:
        CheckpointMappingError: the file is missing, not a state dict, or holds pickled objects.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointMappingError(f"{path} does not exist; give the path of a release file")
    if path.suffix == ".safetensors":
        return unwrap(load_file(str(path)))
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointMappingError(
            f"{path} is not a tensors-only PyTorch file ({str(exc).splitlines()[0]}); convert it "
            "to a plain state dict or safetensors on a trusted machine"
        ) from exc
    if not isinstance(raw, Mapping):
        raise CheckpointMappingError(f"{path} holds a {type(raw).__name__}, not a state dict")
    state = unwrap(raw)
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointMappingError(
            f"{path}: entries {bad[:5]} are not tensors; give the model's state dict only"
        )
    return state


def identify_part(path: Path, state: Mapping[str, Tensor]) -> str:
    """Which released part ``state`` (read from ``path``) is: one of :data:`PARTS`.

    Raises:
        CheckpointMappingError: the keys fit no part, or a lifting head whose file name does not
            say ``s2`` or ``s1`` (name it ``s2_head=PATH``).
    """
    keys = set(state)
    name = Path(path).name.lower()
    if any(k.startswith(COMBINED_PREFIXES) for k in keys):
        return "combined"
    if any(k.startswith("backbone.") for k in keys):
        return "hr"
    if "porj_linear.weight" in keys:
        return "fusion"
    if "decoder.0.weight" in keys:
        tags = {t for t in ("s2", "s1") if t in name.replace("-", "_").split("_") or t in name}
        if len(tags) == 1:
            return f"{tags.pop()}_head"
        raise CheckpointMappingError(
            f"{path} is a lifting head (decoder.0.*) but its name does not say whether it is the "
            "Sentinel-2 or the Sentinel-1 one; pass it as s2_head=PATH or s1_head=PATH"
        )
    if "patch_embed.projection.weight" in keys and "pos_embed" in keys:
        bands = int(state["patch_embed.projection.weight"].shape[1])
        if bands in (10, 2):
            return "s2" if bands == 10 else "s1"
        raise CheckpointMappingError(
            f"{path} is a ViT with {bands} input bands; the release has 10 (Sentinel-2) or 2 "
            "(Sentinel-1); pass it as s2=PATH or s1=PATH"
        )
    if keys == {"ctpe"}:
        return "ctpe"
    raise CheckpointMappingError(
        f"{path}: its keys ({sorted(keys)[:5]}...) match no part of the SkySense release "
        f"(parts: {', '.join(PARTS)}); pass it as PART=PATH if it is one"
    )


def read_release(paths: Sequence[str | Path]) -> list[ReleaseFile]:
    """Read and identify release files; ``PART=PATH`` names a file's part explicitly."""
    files = []
    for item in paths:
        text = str(item)
        part, sep, rest = text.partition("=")
        if sep and part in PARTS:
            path = Path(rest)
            files.append(ReleaseFile(path, part, read_state(path)))
        else:
            path = Path(text)
            state = read_state(path)
            files.append(ReleaseFile(path, identify_part(path, state), state))
    return files


def to_combined(files: Sequence[ReleaseFile]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The release files as one combined-form state dict, and keys set aside with reasons.

    Inside the HR file only ``backbone.*`` is the encoder; its other keys (task heads) are set
    aside by name. ``ctpe`` may come in several files (the S2 ViT file holds a copy): equal
    copies are one; different copies are an error unless one file is given as ``ctpe=PATH``.

    Raises:
        CheckpointMappingError: a part given twice, or copies of ``ctpe`` that disagree.
    """
    combined: dict[str, Tensor] = {}
    ignored: dict[str, str] = {}
    seen: dict[str, Path] = {}
    explicit_ctpe = any(f.part == "ctpe" for f in files)
    ctpe_from: Path | None = None
    for f in files:
        if f.part in seen and f.part != "ctpe":
            raise CheckpointMappingError(
                f"{f.path} and {seen[f.part]} both hold the {f.part!r} part; give one of them"
            )
        seen[f.part] = f.path
        prefix = "" if f.part == "combined" else PART_PREFIX[f.part]
        for key, value in f.state.items():
            if f.part == "hr":
                if not key.startswith("backbone."):
                    ignored[f"{f.path.name}:{key}"] = (
                        "HR file: not under backbone., a task head outside the encoder"
                    )
                    continue
                key = key[len("backbone.") :]
            if key == "ctpe":
                if f.part not in ("ctpe", "combined") and explicit_ctpe:
                    ignored[f"{f.path.name}:ctpe"] = "ctpe given explicitly by ctpe=PATH"
                    continue
                if "ctpe" in combined:
                    if not torch.equal(combined["ctpe"], value):
                        raise CheckpointMappingError(
                            f"{f.path} and {ctpe_from} hold different ctpe (date encodings); "
                            "say which one to use with ctpe=PATH"
                        )
                    first = ctpe_from.name if ctpe_from is not None else "?"
                    ignored[f"{f.path.name}:ctpe"] = f"same as the ctpe of {first}"
                    continue
                combined["ctpe"], ctpe_from = value, f.path
                continue
            combined[prefix + key] = value
    return combined, ignored


def build_official_model(preset: str, overrides: Mapping[str, Any] | None = None) -> SkySense:
    """The SkySense encoder of ``preset`` shaped like the official model, on the meta device
    (load with ``assign=True``).
    """
    merged = {**dict(overrides or {}), **OFFICIAL_OVERRIDES}
    with torch.device("meta"):
        return SkySense(resolve_spec(preset, **merged))


def import_official(
    paths: Sequence[str | Path],
    out_dir: Path,
    *,
    preset: str = "skysense-huge",
    overrides: Mapping[str, Any] | None = None,
    stats: dict[str, Any] | None = None,
) -> tuple[Path, OfficialLoadReport]:
    """Map the release files strictly onto the official-shaped model and write an export.

    Args:
        paths: release files, either form (``PART=PATH`` to name a file's part).
        out_dir: the export folder (``model.safetensors`` + ``config.json``).
        preset: the preset of the release (``skysense-huge``).
        overrides: preset overrides (e.g. ``hr_in_chans: 3`` to keep the RGB patch embedding).
        stats: band normalisation to record (a chips ``stats.json``); None uses the sensors'.

    Returns:
        ``(out_dir, report)``; ``report`` lists every key: loaded, adapted, ignored with reason.

    Raises:
        CheckpointMappingError: a key has no place, a model part is missing, a shape does not fit.
    """
    files = read_release(paths)
    combined, set_aside = to_combined(files)
    model = build_official_model(preset, overrides)
    report = load_official_state_dict(model, combined, strict=True, assign=True)
    report.ignored.update(set_aside)
    if report.not_in_release:
        raise CheckpointMappingError(
            "the official-shaped model has parts no release file holds: "
            f"{report.not_in_release[:5]}"
        )
    weights = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    merged = {**dict(overrides or {}), **OFFICIAL_OVERRIDES}
    config: dict[str, Any] = {
        "format": FORMAT,
        "preset": preset,
        "overrides": merged,
        "spec": model.spec.to_dict(),
        "stats": stats,
        "data_version": "official-release",
        "git_commit": git_commit(),
        "step": 0,
        "encoder": "official",
        "mlflow_run_id": None,
        "dtype": "float32",
        "n_parameters": int(sum(v.numel() for v in weights.values())),
        "source": [
            {"path": str(f.path.resolve()), "part": f.part, "sha256": file_sha256(f.path)}
            for f in files
        ],
        "import_report": {
            "loaded": len(report.loaded),
            "adapted": report.adapted,
            "ignored": report.ignored,
        },
    }
    return write_export(weights, config, Path(out_dir)), report
