"""Embed chips with the exported SkySense encoder using onnxruntime alone.

A serving host needs only ``numpy`` and ``onnxruntime``: no PyTorch, no DeepSpeed, no
``skysense`` package. The encoder file is the ``onnx/encoder.onnx`` artifact of a registered
version (``registry.onnx: true``) or the output of
``skysense.models.onnx_export.export_encoder_onnx``. Its inputs are the normalised model batch
(names and order in the file's ``skysense:inputs`` metadata; see that module's docstring).

Usage::

    python onnx_embed.py encoder.onnx inputs.npz embeddings.npz

``inputs.npz`` holds one array per graph input; ``embeddings.npz`` gets ``embedding``
(B x D x s x s float32). One JSON line on stdout reports the shapes, the seconds and which
modules of the big stacks were imported (none).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import onnxruntime as ort

HEAVY = ("torch", "deepspeed", "skysense", "mlflow")


def main(model_path: str, inputs_path: str, output_path: str) -> int:
    """Run the encoder on the arrays of ``inputs_path``; write ``output_path``."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    with np.load(inputs_path, allow_pickle=False) as data:
        wanted = [i.name for i in session.get_inputs()]
        missing = [n for n in wanted if n not in data.files]
        if missing:
            print(f"{inputs_path}: missing inputs {', '.join(missing)}", file=sys.stderr)
            return 2
        feeds = {n: data[n] for n in wanted}
    start = time.perf_counter()
    (embedding,) = session.run(["embedding"], feeds)
    seconds = time.perf_counter() - start
    np.savez(output_path, embedding=embedding)
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
    print(
        json.dumps(
            {
                "embedding": list(embedding.shape),
                "seconds": seconds,
                "inputs": json.loads(meta.get("skysense:inputs", "[]")),
                "heavy_modules": heavy,
                "onnxruntime": ort.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
