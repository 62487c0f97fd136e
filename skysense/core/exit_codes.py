"""Exit statuses of the ``skysense`` commands: each outcome a caller must tell apart has its own.

A script, a DVC stage or a Prefect flow reads the status, not the message: 1 must mean "refused"
and nothing else, and an error must never look like success. Each named error of
:mod:`skysense.core.errors` carries its status (``exit_code``); the command line exits with it.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a ``skysense`` command's exit status means (see :data:`MEANING`)."""

    OK = 0
    REFUSED = 1
    USAGE = 2
    FAILED = 3
    REGISTRY_UNAVAILABLE = 4
    PARTIAL = 5


SHORT: dict[ExitCode, str] = {
    ExitCode.OK: "done",
    ExitCode.REFUSED: "refused",
    ExitCode.USAGE: "usage or input error",
    ExitCode.FAILED: "the work failed",
    ExitCode.REGISTRY_UNAVAILABLE: "registry unavailable",
    ExitCode.PARTIAL: "partial output",
}
MEANING: dict[ExitCode, str] = {
    ExitCode.OK: "done",
    ExitCode.REFUSED: "refused: the promotion policy said no (promote); the reasons are printed",
    ExitCode.USAGE: "usage or input error: a bad option, params file, --set override, catalog or "
    "file the user must fix; the message names it and what to do",
    ExitCode.FAILED: "the work failed: a training run died (train; the last good checkpoint "
    "stays), or writing the outputs failed (data chip: e.g. the disk is full)",
    ExitCode.REGISTRY_UNAVAILABLE: "registry unavailable: the MLflow tracking server or store is "
    "unreachable or answered with an error; the message names the URI (without credentials)",
    ExitCode.PARTIAL: "partial output: some or all items failed (data chip: locations); the "
    "summary was written and lists them; --allow-partial accepts a partial (not an empty) output",
}


def exit_code_epilog() -> str:
    """One line for ``skysense --help``: each status and its short meaning."""
    return (
        "Exit status: "
        + "; ".join(f"{c.value} {SHORT[c]}" for c in ExitCode)
        + " (details: README, The command line)."
    )
