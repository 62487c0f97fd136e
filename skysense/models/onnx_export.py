"""The encoder as an ONNX graph: serving without PyTorch, DeepSpeed or this package.

:func:`export_onnx` is the one way a module becomes an ONNX file here: PyTorch's dynamo exporter
(``torch.onnx.export(..., dynamo=True)``, which traces with ``torch.export`` and translates
with onnxscript), a dynamic batch dimension (and dynamic time axes where asked), the model
checked by ``onnx.checker`` and its metadata (preset, window, input contract) stored in the file.
A task model (an encoder with a head) uses it the same way: a module, example tensors, names.

:class:`EncoderGraph` is the SkySense encoder with flat tensor inputs, in the model's
:attr:`~skysense.models.skysense.SkySense.dense` mode (no branch on tensor values, which an
exporter cannot trace). Its inputs are the *normalised* model batch that
:func:`skysense.models.batch.arrays_to_batch` makes from physical-unit arrays (``ONNX_INPUTS``:
``s2`` B x T x 10 x s x s, ``s2_doy`` B x T int64, ``s2_valid`` B x T bool, ``has_s2`` B bool,
the same for ``s1``, ``hr`` B x C x 32s x 32s with ``has_hr``, ``region`` B int64 from
:func:`skysense.data.regions.region_id`, and ``dem`` with ``has_dem`` when the preset has one); the
output is ``embedding``
B x D x s x s. The Sentinel chip side ``s`` is fixed at export (the predict window).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from skysense.core.errors import SkySenseError
from skysense.models.skysense import SkySense

ONNX_INPUTS = (
    "s2",
    "s2_doy",
    "s2_valid",
    "has_s2",
    "s1",
    "s1_doy",
    "s1_valid",
    "has_s1",
    "hr",
    "has_hr",
    "region",
    "dem",
    "has_dem",
)
ONNX_OUTPUT = "embedding"
OPSET = 18


class OnnxExportError(SkySenseError):
    """The model could not be exported to ONNX (the message says which step failed)."""


class EncoderGraph(nn.Module):
    """The SkySense encoder with the flat inputs of ``ONNX_INPUTS`` (``dem`` only when the
    preset has a DEM encoder) and one output, the embedding.
    """

    def __init__(self, model: SkySense) -> None:
        super().__init__()
        self.model = model
        self.input_names = [n for n in ONNX_INPUTS if model.spec.dem or "dem" not in n]

    def forward(
        self,
        s2: Tensor,
        s2_doy: Tensor,
        s2_valid: Tensor,
        has_s2: Tensor,
        s1: Tensor,
        s1_doy: Tensor,
        s1_valid: Tensor,
        has_s1: Tensor,
        hr: Tensor,
        has_hr: Tensor,
        region: Tensor,
        dem: Tensor | None = None,
        has_dem: Tensor | None = None,
    ) -> Tensor:
        """The inputs of :attr:`input_names` -> ``B x D x s x s``."""
        batch = {
            "s2": s2, "s2_doy": s2_doy, "s2_valid": s2_valid, "has_s2": has_s2,
            "s1": s1, "s1_doy": s1_doy, "s1_valid": s1_valid, "has_s1": has_s1,
            "hr": hr, "has_hr": has_hr, "region": region,
        }  # fmt: skip
        if dem is not None:
            if has_dem is None:
                raise ValueError("the ONNX encoder's dem input needs has_dem alongside it")
            batch.update(dem=dem, has_dem=has_dem)
        dense, self.model.dense = self.model.dense, True
        try:
            return self.model.embed(batch)
        finally:
            self.model.dense = dense


def graph_inputs(batch: dict[str, Any], names: Sequence[str]) -> tuple[Tensor, ...]:
    """The tensors of a model batch (from ``arrays_to_batch`` plus ``region``) in ``names``'s
    order.

    Raises:
        OnnxExportError: a name the batch lacks (the ONNX graph takes every modality).
    """
    missing = [n for n in names if batch.get(n) is None]
    if missing:
        raise OnnxExportError(
            f"the batch lacks {', '.join(missing)}; the ONNX encoder takes every modality "
            "(send absent ones zero-filled with has_* False)"
        )
    return tuple(torch.as_tensor(batch[n]) for n in names)


def export_onnx(
    module: nn.Module,
    example: Sequence[Tensor],
    path: str | Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: dict[str, dict[int, str]] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Export ``module`` called on ``example`` to the ONNX file ``path`` (dynamo exporter).

    Args:
        module: in eval mode; its forward takes the tensors positionally.
        example: one input per name (their shapes fix every axis not in ``dynamic_axes``).
        path: the ``.onnx`` file to write (weights inside).
        input_names: graph input names, one per ``example`` tensor.
        output_names: graph output names.
        dynamic_axes: ``{input name: {axis: dimension name}}``; a dimension name shared by
            several inputs is one dimension (``batch``).
        metadata: stored as the model's ``metadata_props`` (values JSON-encoded).

    Returns:
        ``path``.

    Raises:
        OnnxExportError: tracing, translation or the ONNX checker failed.
    """
    import onnx

    dims: dict[str, torch.export.Dim] = {}
    shapes: list[dict[int, Any] | None] = []
    for name in input_names:
        axes = (dynamic_axes or {}).get(name)
        if not axes:
            shapes.append(None)
            continue
        shapes.append(
            {axis: dims.setdefault(dim, torch.export.Dim(dim)) for axis, dim in axes.items()}
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        program = torch.onnx.export(
            module,
            tuple(example),
            dynamo=True,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_shapes=tuple(shapes),
            opset_version=OPSET,
            external_data=False,
            optimize=False,
            verbose=False,
        )
    except Exception as exc:
        raise OnnxExportError(
            f"{path}: torch.onnx.export failed ({type(exc).__name__}: {str(exc)[:300]})"
        ) from exc
    if program is None:  # dynamo=True always returns the program
        raise OnnxExportError(f"{path}: torch.onnx.export returned no ONNX program")
    proto = program.model_proto
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value, default=str)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise OnnxExportError(f"{path}: the exported graph is not valid ONNX ({exc})") from None
    onnx.save_model(proto, str(path))
    return path


def export_encoder_onnx(
    model: SkySense,
    batch: dict[str, Any],
    path: str | Path,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Export the encoder for batches shaped like ``batch`` (its chip side; any batch size and
    number of dates) to ``path``.

    Args:
        model: the encoder (put in eval mode).
        batch: an example model batch with every input of ``ONNX_INPUTS`` (``region`` included).
        path: the ``.onnx`` file.
        metadata: extra metadata (e.g. the export's ``preset``, ``data_version``).
    """
    model.eval()
    graph = EncoderGraph(model).eval()
    example = _at_least_two(graph_inputs(batch, graph.input_names), graph.input_names)
    dynamic: dict[str, dict[int, str]] = {}
    for name in graph.input_names:
        axes = {0: "batch"}
        if name.startswith(("s2", "s1")) and name != "has_s2" and name != "has_s1":
            axes[1] = f"{name[:2]}_dates"
        dynamic[name] = axes
    side = int(example[0].shape[-1])
    info = {
        "skysense:inputs": graph.input_names,
        "skysense:output": ONNX_OUTPUT,
        "skysense:sentinel_px": side,
        "skysense:embed_dim": int(model.embed_dim),
        "skysense:preset": model.spec.name if hasattr(model.spec, "name") else None,
        **(metadata or {}),
    }
    with torch.no_grad():
        return export_onnx(
            graph,
            example,
            path,
            input_names=graph.input_names,
            output_names=[ONNX_OUTPUT],
            dynamic_axes=dynamic,
            metadata=info,
        )


def _at_least_two(tensors: tuple[Tensor, ...], names: Sequence[str]) -> tuple[Tensor, ...]:
    """Repeat samples (and dates) of an example so that no dynamic axis has size 1: torch.export
    specialises a size-1 dimension to the constant 1.
    """
    out = []
    for name, t in zip(names, tensors, strict=True):
        if t.shape[0] == 1:
            t = t.repeat_interleave(2, dim=0)
        if name[:2] in ("s2", "s1") and not name.startswith("has_") and t.shape[1] == 1:
            t = t.repeat_interleave(2, dim=1)
        out.append(t)
    return tuple(out)


def onnx_feeds(batch: dict[str, Any], input_names: Sequence[str]) -> dict[str, np.ndarray]:
    """The onnxruntime feed of a model batch: numpy arrays by input name."""
    return {
        n: t.detach().cpu().numpy() for n, t in zip(input_names, graph_inputs(batch, input_names))
    }
