"""Suite-wide fixtures."""

from __future__ import annotations

import logging
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
