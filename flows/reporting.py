"""Markdown tables and links for the Prefect artifacts of a pipeline run.

Pure functions of the stage outputs (``validation.json``, ``metrics.json``) and of registry
facts; :mod:`flows.pipeline` publishes them with ``prefect.artifacts``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``{}`` when the file is missing or not an object."""
    p = Path(path)
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def flatten_scalars(data: dict[str, Any], prefix: str = "", depth: int = 2) -> dict[str, Any]:
    """Numbers, strings and booleans of a nested mapping as ``a.b`` keys (lists skipped)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and depth > 0:
            out.update(flatten_scalars(value, f"{name}.", depth - 1))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[name] = value
    return out


def numeric_metrics(data: dict[str, Any]) -> dict[str, float]:
    """The numeric leaves of a metrics mapping (booleans excluded)."""
    return {
        k: float(v)
        for k, v in flatten_scalars(data).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def validation_table(report: dict[str, Any]) -> str:
    """Markdown table of the validation counts: total, accepted and quarantined per level.

    Reads ``validation.json`` of ``skysense validate`` (``rasters``, ``acquisitions``,
    ``locations``, ``chips`` each with ``total``/``accepted``/``quarantined``) and lists the
    expectations that failed; any other JSON object is shown as its numeric leaves.
    """
    levels = [
        k
        for k in ("rasters", "acquisitions", "locations", "chips")
        if isinstance(report.get(k), dict) and "total" in report[k]
    ]
    passed = report.get("passed")
    head = f"**Validation**: {'passed' if passed else 'FAILED'}\n\n" if passed is not None else ""
    if not levels:
        rows = {
            k: v for k, v in flatten_scalars(report).items() if isinstance(v, (int, float, bool))
        }
        return head + "\n".join(
            [
                "| item | value |",
                "|---|---|",
                *(f"| {_fmt(k)} | {_fmt(v)} |" for k, v in rows.items()),
            ]
        )
    lines = ["| level | total | accepted | quarantined |", "|---|---|---|---|"]
    for level in levels:
        c = report[level]
        lines.append(
            f"| {level} | {c.get('total')} | {c.get('accepted')} | {c.get('quarantined')} |"
        )
    failed = [
        f"{group}.{name} ({exp.get('severity')}, {exp.get('failed')} failed)"
        for group, checks in (report.get("expectations") or {}).items()
        if isinstance(checks, dict)
        for name, exp in checks.items()
        if isinstance(exp, dict) and not exp.get("success", True)
    ]
    tail = "\n\nFailed expectations: " + ("; ".join(failed) if failed else "none")
    return head + "\n".join(lines) + tail


def metrics_table(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    challenger_version: str | None,
    champion_version: str | None,
) -> str:
    """Markdown table of the evaluation metrics of the new model against the champion."""
    new = f"challenger v{challenger_version}" if challenger_version else "this run"
    old = f"champion v{champion_version}" if champion_version else "champion (none)"
    lines = [f"| metric | {new} | {old} | delta |", "|---|---|---|---|"]
    for name in sorted(challenger):
        mine = challenger[name]
        theirs = (champion or {}).get(name)
        delta = "" if theirs is None else f"{mine - theirs:+.4g}"
        lines.append(f"| {name} | {mine:.4g} | {_fmt(theirs)} | {delta} |")
    return "\n".join(lines)


def mlflow_ui_base(tracking_uri: str) -> str:
    """Where the MLflow UI of a tracking URI is: the server itself (without the credentials a
    URI may carry: the browser asks for the login), or a local ``mlflow ui``.
    """
    from skysense.core.credentials import strip_credentials

    if tracking_uri.startswith(("http://", "https://")):
        return strip_credentials(tracking_uri.rstrip("/"), marker=False)
    return "http://127.0.0.1:5000"


def run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """MLflow UI address of a run."""
    return f"{mlflow_ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}"


def model_version_link(tracking_uri: str, name: str, version: str) -> str:
    """MLflow UI address of a registered model version."""
    return f"{mlflow_ui_base(tracking_uri)}/#/models/{name}/versions/{version}"
