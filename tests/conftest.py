"""Suite-wide fixtures."""

from __future__ import annotations

import logging
import os
import sys

import pytest

from skysense.cli.process_env import set_process_defaults

set_process_defaults()  # the suite is an entry point too: offline tools, passive OpenMP threads


@pytest.fixture(scope="session", autouse=True)
def _prefect_console_outlives_capture():
    """Point Prefect's console log handlers at the real stderr when the session ends.

    Flows run in-process leave Prefect's ephemeral server running; Prefect stops it in an
    ``atexit`` hook and logs "Stopping temporary server". By then pytest has closed the capture
    stream the console handler was created with, and the handler (unlike Prefect's other stream
    handlers) prints a "Logging error ... I/O operation on closed file" traceback for it.
    """
    yield
    if "prefect.logging.handlers" not in sys.modules:
        return
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [
        logging.getLogger(),
        *(logging.getLogger(name) for name in logging.root.manager.loggerDict),
    ]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler):
                handler.setStream(sys.__stderr__)
                handler.console.file = sys.__stderr__


@pytest.fixture(autouse=True)
def _mlflow_store_per_test():
    """Each test starts without the previous test's MLflow store.

    ``mlflow.set_registry_uri`` (called by :func:`skysense.tracking.store.connect`) also exports
    ``MLFLOW_REGISTRY_URI``, which would otherwise send the next test's registrations to the
    previous test's (deleted) store, and MLflow's process-wide URIs would make a client built
    with only a tracking URI read the previous test's registry.
    """
    saved = {k: os.environ.get(k) for k in ("MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_URI")}
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if "mlflow" in sys.modules:
        import mlflow

        mlflow.set_registry_uri(None)  # None (not ""): back to "the tracking URI"
        mlflow.set_tracking_uri(None)
