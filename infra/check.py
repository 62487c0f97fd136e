"""Offline checks of the infrastructure files (``make infra-check``).

What is checked, without any network access:

- every YAML file under ``infra/`` plus ``prefect.yaml`` and ``dvc.yaml`` is well formed and
  passes ``yamllint`` (relaxed rules, 120-column lines);
- ``infra/compose.yaml`` against the compose-spec JSON schema vendored by ``check-jsonschema``,
  plus: every ``${VAR}`` without a default is defined in ``infra/.env.example``, no literal
  secret sits in the compose file, and ``depends_on`` names existing services;
- ``infra/k8s/*.yaml`` against ``infra/schemas/k8s-minimal.json`` (a hand-written subset of the
  Kubernetes schema: no upstream schema is installable offline), plus Deployment selectors that
  match their pod labels;
- ``infra/deepspeed/hostfile.example``: ``<host> slots=<n>`` lines; shell scripts: ``bash -n``;
- ``infra/Dockerfile``: a ``FROM``, and every ``COPY`` source exists in the build context;
- ``prefect.yaml``: each deployment's entrypoint names a flow function that exists, a work pool,
  and 5-field cron schedules;
- ``dvc.yaml``: DVC's own schema.

Run ``python infra/check.py [ROOT]``; exit status 1 when a check fails.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

YAMLLINT_CONFIG = """
extends: relaxed
rules:
  line-length: {max: 120}
  indentation: {spaces: consistent, indent-sequences: whatever}
  truthy: disable
"""
SECRET_KEYS = re.compile(r"(PASSWORD|SECRET|ACCESS_KEY)", re.IGNORECASE)
VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?][^}]*)?\}")
HOSTFILE_LINE = re.compile(r"^[A-Za-z0-9_.-]+\s+slots=[1-9][0-9]*$")


@dataclass(frozen=True)
class Finding:
    """One check result: the file, whether it passed, and what was seen."""

    path: str
    check: str
    ok: bool
    message: str = ""


def _load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def check_yaml(root: Path) -> list[Finding]:
    """Well-formedness and yamllint of every YAML file the infrastructure owns."""
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    conf = YamlLintConfig(YAMLLINT_CONFIG)
    files = sorted((root / "infra").rglob("*.yaml")) + [root / "prefect.yaml", root / "dvc.yaml"]
    out: list[Finding] = []
    for path in files:
        rel = str(path.relative_to(root))
        if not path.exists():
            out.append(Finding(rel, "yaml", False, "missing"))
            continue
        try:
            _load_all(path)
        except yaml.YAMLError as exc:
            out.append(Finding(rel, "yaml", False, f"not valid YAML: {exc}"))
            continue
        problems = [p for p in linter.run(path.read_text(), conf) if p.level == "error"]
        msg = "; ".join(f"line {p.line}: {p.message}" for p in problems[:5])
        out.append(Finding(rel, "yamllint", not problems, msg))
    return out


def _schema_errors(instance: Any, schema: dict[str, Any]) -> list[str]:
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    validator = cls(schema)
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message[:200]}"
        for err in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    ]


def compose_schema() -> dict[str, Any]:
    """The compose-spec JSON schema vendored by check-jsonschema (no download)."""
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "compose-spec.json").read_text())


def _env_example_keys(path: Path) -> set[str]:
    keys = set()
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            keys.add(line.split("=", 1)[0].strip())
    return keys


def check_compose(root: Path) -> list[Finding]:
    """Compose schema, variables defined in the env example, no literal secrets."""
    path = root / "infra" / "compose.yaml"
    rel = str(path.relative_to(root))
    doc = yaml.safe_load(path.read_text())
    errors = _schema_errors(doc, compose_schema())
    out = [Finding(rel, "compose-spec schema", not errors, "; ".join(errors[:5]))]

    env_keys = _env_example_keys(root / "infra" / ".env.example")
    text = path.read_text()
    undefined = sorted(
        {m.group(1) for m in VAR_REF.finditer(text) if not (m.group(2) or "").startswith(("-", ":-"))}
        - env_keys
    )
    out.append(Finding(rel, "variables in .env.example", not undefined,
                       f"not in infra/.env.example: {', '.join(undefined)}" if undefined else ""))

    literal: list[str] = []
    services = doc.get("services", {})
    for name, svc in services.items():
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict((item.split("=", 1) + [""])[:2] for item in env)
        for key, value in env.items():
            if SECRET_KEYS.search(str(key)) and value and "${" not in str(value):
                literal.append(f"{name}.{key}")
    out.append(Finding(rel, "no literal secrets", not literal, ", ".join(literal)))

    missing_deps = [
        f"{name} -> {dep}"
        for name, svc in services.items()
        for dep in (svc.get("depends_on") or {})
        if dep not in services
    ]
    out.append(Finding(rel, "depends_on names services", not missing_deps, ", ".join(missing_deps)))
    return out


def check_kubernetes(root: Path) -> list[Finding]:
    """Each manifest against the minimal Kubernetes schema; selectors match pod labels."""
    schema = json.loads((root / "infra" / "schemas" / "k8s-minimal.json").read_text())
    out: list[Finding] = []
    manifests = sorted((root / "infra" / "k8s").glob("*.yaml"))
    if not manifests:
        return [Finding("infra/k8s", "kubernetes", False, "no manifests found")]
    for path in manifests:
        rel = str(path.relative_to(root))
        for index, doc in enumerate(_load_all(path)):
            label = f"{rel}[{index}] {doc.get('kind', '?')}/{doc.get('metadata', {}).get('name', '?')}"
            errors = _schema_errors(doc, schema)
            if doc.get("kind") == "Deployment" and not errors:
                selector = doc["spec"]["selector"]["matchLabels"]
                labels = doc["spec"]["template"].get("metadata", {}).get("labels", {})
                if any(labels.get(k) != v for k, v in selector.items()):
                    errors.append("spec.selector.matchLabels do not match the pod template labels")
            out.append(Finding(label, "kubernetes schema", not errors, "; ".join(errors[:5])))
    return out


def check_hostfile(root: Path) -> list[Finding]:
    """DeepSpeed hostfile example: ``<host> slots=<n>`` per non-comment line."""
    path = root / "infra" / "deepspeed" / "hostfile.example"
    rel = str(path.relative_to(root))
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    bad = [ln for ln in lines if not HOSTFILE_LINE.match(ln)]
    msg = f"bad lines: {bad}" if bad else ("no hosts listed" if not lines else "")
    return [Finding(rel, "deepspeed hostfile", bool(lines) and not bad, msg)]


def check_dockerfile(root: Path) -> list[Finding]:
    """A FROM instruction, and COPY sources that exist in the build context (the repo root)."""
    path = root / "infra" / "Dockerfile"
    rel = str(path.relative_to(root))
    instructions = [
        ln.strip() for ln in path.read_text().replace("\\\n", " ").splitlines()
        if ln.strip() and not ln.strip().startswith("#")
    ]
    problems = [] if any(i.upper().startswith("FROM ") for i in instructions) else ["no FROM"]
    for ins in instructions:
        if ins.upper().startswith("COPY ") and "--from" not in ins:
            sources = ins.split()[1:-1]
            problems += [f"COPY source {s} missing" for s in sources if not (root / s).exists()]
    return [Finding(rel, "dockerfile", not problems, "; ".join(problems))]


def check_scripts(root: Path) -> list[Finding]:
    """Shell scripts under ``infra/``: ``bash -n`` syntax check and the executable bit."""
    import os
    import subprocess

    out: list[Finding] = []
    for path in sorted((root / "infra").rglob("*.sh")):
        proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30, check=False)
        problems = [proc.stderr.strip()] if proc.returncode else []
        if not os.access(path, os.X_OK):
            problems.append("not executable (chmod +x)")
        out.append(Finding(str(path.relative_to(root)), "shell script", not problems, "; ".join(problems)))
    return out


def _flow_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("flow" in ast.unparse(dec) for dec in node.decorator_list)
    }


def check_prefect_yaml(root: Path) -> list[Finding]:
    """Deployments: entrypoints naming existing flow functions, a work pool, valid cron."""
    path = root / "prefect.yaml"
    doc = yaml.safe_load(path.read_text()) or {}
    out: list[Finding] = []
    deployments = doc.get("deployments") or []
    if not deployments:
        return [Finding("prefect.yaml", "prefect deployments", False, "no deployments")]
    for dep in deployments:
        problems = []
        entry = str(dep.get("entrypoint", ""))
        file_part, _, func = entry.partition(":")
        if not (root / file_part).is_file():
            problems.append(f"entrypoint file {file_part!r} missing")
        elif func not in _flow_functions(root / file_part):
            problems.append(f"{file_part} has no @flow function {func!r}")
        if not (dep.get("work_pool") or {}).get("name"):
            problems.append("no work_pool.name")
        for sched in dep.get("schedules") or []:
            cron = sched.get("cron")
            if cron is not None and len(str(cron).split()) != 5:
                problems.append(f"cron {cron!r} is not 5 fields")
        out.append(Finding(f"prefect.yaml:{dep.get('name')}", "prefect deployment",
                           not problems, "; ".join(problems)))
    return out


def check_dvc_yaml(root: Path) -> list[Finding]:
    """``dvc.yaml`` against DVC's own pipeline schema."""
    from dvc.schema import COMPILED_MULTI_STAGE_SCHEMA
    from voluptuous import Invalid

    try:
        COMPILED_MULTI_STAGE_SCHEMA(yaml.safe_load((root / "dvc.yaml").read_text()))
    except Invalid as exc:
        return [Finding("dvc.yaml", "dvc schema", False, str(exc))]
    return [Finding("dvc.yaml", "dvc schema", True)]


def check_all(root: Path) -> list[Finding]:
    """Every check; a check that raises is reported as a failed finding."""
    findings: list[Finding] = []
    for check in (check_yaml, check_compose, check_kubernetes, check_hostfile,
                  check_scripts, check_dockerfile, check_prefect_yaml, check_dvc_yaml):
        try:
            findings.extend(check(root))
        except Exception as exc:  # noqa: BLE001 - report, do not crash the whole run
            findings.append(Finding(check.__name__, check.__name__, False, f"{type(exc).__name__}: {exc}"))
    return findings


def main(argv: list[str] | None = None) -> int:
    """Print one line per finding; 0 when all pass."""
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(__file__).resolve().parent.parent
    findings = check_all(root)
    for f in findings:
        mark = "ok  " if f.ok else "FAIL"
        print(f"{mark} {f.check:28s} {f.path}" + (f"  -- {f.message}" if f.message else ""))
    failed = sum(not f.ok for f in findings)
    print(f"{len(findings) - failed}/{len(findings)} infrastructure checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
