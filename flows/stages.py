"""Running one pipeline stage as a subprocess: ``dvc repro`` or the stage's ``skysense`` command.

The commands come from ``dvc.yaml`` (one source of truth for what a stage runs). A stage that
exits non-zero raises :class:`StageFailed` with the stage's own error lines; output that looks
like a store or server that was briefly unreachable raises :class:`TransientStageError`, which
the Prefect tasks retry.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from skysense.core.credentials import strip_credentials
from skysense.core.errors import SkySenseError
from skysense.core.exit_codes import ExitCode

TRANSIENT_MARKERS = re.compile(
    r"connection refused|connection reset|temporarily unavailable|temporary failure|"
    r"timed out|could not connect|unable to connect|name or service not known|"
    r"database is locked|service unavailable|HTTP 50[234]|max retries exceeded",
    re.IGNORECASE,
)
ERROR_LINE = re.compile(r"^\s*(error|ERROR|[A-Za-z]*Error\b|[A-Za-z]*Failed\b|Traceback)")


class StageFailed(SkySenseError):
    """A pipeline stage exited non-zero; the message carries the stage's own error lines."""


class TransientStageError(StageFailed):
    """A stage failed on something that may pass on retry (store or server unreachable)."""


@dataclass
class StageReport:
    """What one stage run did: whether it ran or DVC skipped it, how long, its output tail."""

    stage: str
    ran: bool
    seconds: float
    command: list[str]
    output_tail: str = ""
    extra: dict[str, object] = field(default_factory=dict)


def skysense_bin() -> str:
    """The ``skysense`` console script next to the running interpreter (else from PATH)."""
    candidate = Path(sys.executable).with_name("skysense")
    return str(candidate) if candidate.exists() else "skysense"


def tool_bin(name: str) -> str:
    """A console script (``dvc``, ``mlflow``) of this environment, else the name for PATH."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


TEMPLATE = re.compile(r"\$\{\s*([A-Za-z0-9_.]+)\s*\}")


def resolve_templates(text: str, values: dict[str, object]) -> str:
    """Substitute DVC's ``${section.key}`` references with values of the resolved params.

    Raises:
        StageFailed: a reference names no setting.
    """

    def lookup(match: re.Match[str]) -> str:
        node: object = values
        for part in match.group(1).split("."):
            if not isinstance(node, dict) or part not in node:
                raise StageFailed(
                    f"dvc.yaml references ${{{match.group(1)}}}, which is not a setting in params"
                )
            node = node[part]
        return shlex.quote(str(node))

    return TEMPLATE.sub(lookup, text)


def stage_commands(
    stage: str, root: str | Path, values: dict[str, object] | None = None
) -> list[str]:
    """The shell commands ``dvc.yaml`` declares for ``stage`` (``${...}`` resolved from ``values``).

    Raises:
        StageFailed: ``dvc.yaml`` is missing or has no such stage.
    """
    path = Path(root) / "dvc.yaml"
    if not path.exists():
        raise StageFailed(
            f"{path} not found: run the pipeline from the project root (it holds dvc.yaml)"
        )
    stages = (yaml.safe_load(path.read_text()) or {}).get("stages", {})
    if stage not in stages:
        raise StageFailed(f"{path} has no stage {stage!r}; stages: {', '.join(stages)}")
    cmd = stages[stage]["cmd"]
    commands = [cmd] if isinstance(cmd, str) else list(cmd)
    return [resolve_templates(c, values) for c in commands] if values is not None else commands


def _env() -> dict[str, str]:
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env["COLUMNS"] = "200"  # rich wraps at 80 columns without a terminal: keep messages whole
    return env


def _error_summary(stage: str, output: str, code: int) -> str:
    """The stage's own error: from its last ``error:``/exception line on (DVC's wrapper lines
    dropped), else the last lines of its output.
    """
    lines = [ln.rstrip() for ln in output.splitlines() if ln.strip()]
    lines = [ln for ln in lines if "failed to reproduce" not in ln and "failed to run:" not in ln]
    starts = [
        i for i, ln in enumerate(lines) if ERROR_LINE.match(ln) and not ln.startswith("ERROR")
    ]
    body = lines[starts[-1] :][:12] if starts else lines[-8:]
    return strip_credentials(f"stage '{stage}' failed (exit {code}):\n" + "\n".join(body))


def run_command(
    stage: str,
    argv: list[str],
    cwd: str | Path,
    timeout_s: float | None = None,
    stdout_only: bool = False,
    ok_codes: tuple[int, ...] = (0,),
) -> tuple[str, float]:
    """Run ``argv`` in ``cwd``; return (combined output, or stdout alone, and seconds).

    Raises:
        TransientStageError: exit 4 (registry unavailable) or a non-zero exit whose output
            names an unreachable store or server.
        StageFailed: any other non-zero exit or a timeout.
    """
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise StageFailed(
            f"stage '{stage}' ran past {timeout_s:.0f} s: {strip_credentials(shlex.join(argv))}"
        ) from exc
    seconds = time.perf_counter() - start
    output = (proc.stdout or "") + (proc.stderr or "")
    if proc.returncode not in ok_codes:
        message = _error_summary(stage, output, proc.returncode)
        if proc.returncode == ExitCode.REGISTRY_UNAVAILABLE or TRANSIENT_MARKERS.search(output):
            raise TransientStageError(message)
        raise StageFailed(message)
    return (proc.stdout or "") if stdout_only else output, seconds


def run_dvc_stage(stage: str, root: str | Path, force: bool = False) -> StageReport:
    """``dvc repro --single-item <stage>``: runs it when its deps, params or cmd changed."""
    argv = [tool_bin("dvc"), "repro", "--single-item", stage]
    if force:
        argv.append("--force")
    output, seconds = run_command(stage, argv, root)
    ran = f"Running stage '{stage}'" in output
    return StageReport(stage, ran, seconds, argv, output[-2000:])


def run_cli_stage(
    stage: str,
    root: str | Path,
    params: str | Path | None = None,
    overrides: list[str] | None = None,
    values: dict[str, object] | None = None,
) -> StageReport:
    """Run the stage's ``skysense`` commands from ``dvc.yaml`` directly (no DVC bookkeeping).

    ``${...}`` references resolve from ``values`` (the resolved params as a dict); ``--params``
    and each ``--set`` override are appended to every command.
    """
    extra: list[str] = []
    if params is not None:
        extra += ["--params", str(params)]
    for item in overrides or []:
        extra += ["--set", item]
    total = 0.0
    tail = ""
    argv: list[str] = []
    for command in stage_commands(stage, root, values or {}):
        argv = shlex.split(command) + extra
        if argv[0] == "skysense":
            argv[0] = skysense_bin()
        output, seconds = run_command(stage, argv, root)
        total += seconds
        tail = output[-2000:]
    return StageReport(stage, True, total, argv, tail)


def dvc_stage_changed(stage: str, root: str | Path) -> bool:
    """Whether ``dvc status`` reports ``stage`` out of date (deps, params, outs or cmd)."""
    argv = [tool_bin("dvc"), "status", "--json", stage]
    output, _ = run_command(stage, argv, root)
    start = output.find("{")
    if start < 0:
        return True
    import json

    try:
        status = json.loads(output[start:])
    except json.JSONDecodeError:
        return True
    return bool(status.get(stage))


def dvc_commit_stage(stage: str, root: str | Path) -> None:
    """Record the stage's current deps, params and outs in ``dvc.lock`` (``dvc commit -f``)."""
    run_command(stage, [tool_bin("dvc"), "commit", "--force", stage], root)


def dvc_push(root: str | Path, remote: str, url: str) -> StageReport:
    """``dvc push -r REMOTE``; a remote missing from ``.dvc/config`` is added from ``url`` to the
    git-ignored ``.dvc/config.local`` first (relative URLs resolve against ``root``).
    """
    listing, _ = run_command("push", [tool_bin("dvc"), "remote", "list"], root)
    names = {
        line.split()[0]
        for line in listing.splitlines()
        if line.strip() and not line.startswith(" ")
    }
    if remote not in names:
        target = (
            url if "://" in url or Path(url).is_absolute() else str((Path(root) / url).resolve())
        )
        run_command("push", [tool_bin("dvc"), "remote", "add", "--local", remote, target], root)
    argv = [tool_bin("dvc"), "push", "-r", remote]
    output, seconds = run_command("push", argv, root)
    return StageReport("push", True, seconds, argv, output[-2000:])
