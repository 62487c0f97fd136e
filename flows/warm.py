"""Heavy imports done in the background while the flow waits on a stage's subprocess.

The pipeline flow spends most of its life blocked on ``dvc repro`` subprocesses (sample, train,
evaluate), then runs library code in-process that imports large packages on first use:
great-expectations for the validation judge (about 4 s), MLflow's pyfunc and torch for
registration (about 3 s). Importing them in a daemon thread during the preceding subprocess
takes those seconds off the pipeline's critical path. The thread keeps the normal CPU priority:
a starved thread holding the GIL would stall the flow's own thread that reads the stage's
output. A failed import is left for the real import to report, where the module is used.
"""

from __future__ import annotations

import importlib
import threading

#: What each stage's in-process successor imports, warmed while that stage runs.
WARM_DURING = {
    "sample": ("great_expectations",),  # validation judge (skysense.validation.suites)
    "train": ("mlflow.pyfunc", "torch", "safetensors.torch"),  # register (skysense.registry)
}


def _import_all(modules: tuple[str, ...]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the import where the module is used reports it
            return


def warm_imports(modules: tuple[str, ...]) -> threading.Thread | None:
    """Import ``modules`` in a daemon thread (in order); ``None`` when there is nothing to do."""
    import sys

    todo = tuple(m for m in modules if m not in sys.modules)
    if not todo:
        return None
    thread = threading.Thread(
        target=_import_all, args=(todo,), name="skysense-warm-imports", daemon=True
    )
    thread.start()
    return thread


def warm_for_stage(stage: str) -> threading.Thread | None:
    """Start warming what the code after ``stage`` imports (see :data:`WARM_DURING`)."""
    return warm_imports(WARM_DURING.get(stage, ()))
