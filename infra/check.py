"""Offline checks of the infrastructure files (``make infra-check``).

What is checked, without any network access:

- every YAML file under ``infra/`` plus ``prefect.yaml`` and ``dvc.yaml`` is well formed and
  passes ``yamllint`` (relaxed rules, 120-column lines);
- ``infra/compose.yaml`` against the compose-spec JSON schema vendored by ``check-jsonschema``,
  plus the safe defaults of ``docs/security.md``: ports published on 127.0.0.1 only; one env
  file per service (``infra/env/<name>.env``, its ``.example`` committed, no shared ``.env``,
  every ``${VAR}`` of the compose file with a default); every variable a service's command,
  healthcheck or mounted script uses defined in its env files or ``environment``; the MLflow
  server behind its basic-auth app and the Prefect server behind an API auth string; MinIO's
  root login only in MinIO's own services; no literal secret in the compose file; and
  ``depends_on`` names existing services;
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
VAR_REF = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?][^}]*)?\}")
CONTAINER_VAR = re.compile(r"\$\$\{?([A-Za-z_][A-Za-z0-9_]*)")  # $$VAR: expanded in the container
SCRIPT_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
SCRIPT_ASSIGNED = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)=")
LOOPBACK = ("127.0.0.1", "::1", "[::1]", "localhost")
URI_PASSWORD = re.compile(r"://[^/@\s:]+:[^/@\s]+@")  # scheme://user:password@
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


def _service_env_files(svc: dict[str, Any]) -> list[str]:
    files = svc.get("env_file") or []
    files = [files] if isinstance(files, str | dict) else files
    return [f["path"] if isinstance(f, dict) else str(f) for f in files]


def _service_environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict((item.split("=", 1) + [""])[:2] for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _mounted_scripts(infra: Path, svc: dict[str, Any]) -> list[Path]:
    """Shell scripts a service mounts from the repository (``./dir:/x`` or ``./x.sh:/y``)."""
    scripts: list[Path] = []
    for volume in svc.get("volumes") or []:
        source = volume.get("source", "") if isinstance(volume, dict) else str(volume).split(":")[0]
        if not source.startswith("."):
            continue
        path = (infra / source).resolve()
        if path.is_dir():
            scripts += sorted(path.rglob("*.sh"))
        elif path.suffix == ".sh" and path.is_file():
            scripts.append(path)
    return scripts


def _published_port_problems(name: str, svc: dict[str, Any]) -> list[str]:
    problems = []
    for port in svc.get("ports") or []:
        if isinstance(port, dict):
            host_ip = str(port.get("host_ip", ""))
            shown = f"{host_ip}:{port.get('published')}:{port.get('target')}"
        else:
            text = str(port)
            host_ip = text.rsplit(":", 2)[0] if text.count(":") >= 2 else ""
            shown = text
        if host_ip not in LOOPBACK:
            problems.append(f"{name} publishes {shown!r} on all interfaces (use 127.0.0.1:...)")
    return problems


def check_compose(root: Path) -> list[Finding]:
    """Compose schema, safe defaults (loopback, logins, per-service env files), no literal
    secrets, ``depends_on``.
    """
    infra = root / "infra"
    path = infra / "compose.yaml"
    rel = str(path.relative_to(root))
    doc = yaml.safe_load(path.read_text())
    errors = _schema_errors(doc, compose_schema())
    out = [Finding(rel, "compose-spec schema", not errors, "; ".join(errors[:5]))]
    services = doc.get("services", {})
    text = path.read_text()

    undefaulted = sorted(
        {
            m.group(1)
            for m in VAR_REF.finditer(text)
            if not (m.group(2) or "").startswith(("-", ":-"))
        }
    )
    out.append(
        Finding(
            rel,
            "variables have defaults",
            not undefaulted,
            f"need a shared .env: {', '.join(undefaulted)} (give a default, or move "
            "them into the service's env file)"
            if undefaulted
            else "",
        )
    )

    env_problems: list[str] = []
    env_keys: dict[str, set[str]] = {}
    for name, svc in services.items():
        keys = set(_service_environment(svc))
        for env_file in _service_env_files(svc):
            example = infra / f"{env_file}.example"
            if not (env_file.startswith("env/") and env_file.endswith(".env")):
                env_problems.append(f"{name}: env_file {env_file!r} is not env/<service>.env")
            elif not example.is_file():
                env_problems.append(f"{name}: {example.relative_to(root)} is missing")
            else:
                keys |= _env_example_keys(example)
        env_keys[name] = keys
    out.append(Finding(rel, "per-service env files", not env_problems, "; ".join(env_problems)))

    missing: list[str] = []
    for name, svc in services.items():
        used = set()
        for key in ("command", "entrypoint", "healthcheck"):
            used |= set(CONTAINER_VAR.findall(json.dumps(svc.get(key) or "")))
        for script in _mounted_scripts(infra, svc):
            body = script.read_text()
            used |= set(SCRIPT_VAR.findall(body)) - set(SCRIPT_ASSIGNED.findall(body))
        missing += [f"{name}: {var}" for var in sorted(used - env_keys[name])]
    out.append(
        Finding(
            rel,
            "variables in env files",
            not missing,
            f"not in the service's env file or environment: {', '.join(missing)}"
            if missing
            else "",
        )
    )

    ports = [p for name, svc in services.items() for p in _published_port_problems(name, svc)]
    out.append(Finding(rel, "loopback binds", not ports, "; ".join(ports)))

    login: list[str] = []
    for name, svc in services.items():
        command = (
            " ".join(str(c) for c in (svc.get("command") or []))
            if isinstance(svc.get("command"), list)
            else str(svc.get("command") or "")
        )
        if re.search(r"\bmlflow\s+server\b", command) and not re.search(
            r"--app-name[= ]basic-auth\b", command
        ):
            login.append(f"{name}: mlflow server without --app-name=basic-auth")
        if (
            re.search(r"\bprefect\s+server\s+start\b", command)
            and "PREFECT_SERVER_API_AUTH_STRING" not in env_keys[name]
        ):
            login.append(f"{name}: prefect server without PREFECT_SERVER_API_AUTH_STRING")
    out.append(Finding(rel, "servers require a login", not login, "; ".join(login)))

    root_login = [
        name
        for name, svc in services.items()
        if not str(svc.get("image", "")).startswith("minio/")
        and any(k.startswith("MINIO_ROOT_") for k in env_keys[name])
    ]
    out.append(
        Finding(
            rel,
            "scoped MinIO credentials",
            not root_login,
            f"MinIO root login given to {', '.join(root_login)}" if root_login else "",
        )
    )

    literal: list[str] = []
    for name, svc in services.items():
        for key, value in _service_environment(svc).items():
            if (SECRET_KEYS.search(key) and value and "${" not in value) or URI_PASSWORD.search(
                value
            ):
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
            label = (
                f"{rel}[{index}] {doc.get('kind', '?')}/{doc.get('metadata', {}).get('name', '?')}"
            )
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
    lines = [
        ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    bad = [ln for ln in lines if not HOSTFILE_LINE.match(ln)]
    msg = f"bad lines: {bad}" if bad else ("no hosts listed" if not lines else "")
    return [Finding(rel, "deepspeed hostfile", bool(lines) and not bad, msg)]


def check_dockerfile(root: Path) -> list[Finding]:
    """A FROM instruction, and COPY sources that exist in the build context (the repo root)."""
    path = root / "infra" / "Dockerfile"
    rel = str(path.relative_to(root))
    instructions = [
        ln.strip()
        for ln in path.read_text().replace("\\\n", " ").splitlines()
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
        proc = subprocess.run(
            ["bash", "-n", str(path)], capture_output=True, text=True, timeout=30, check=False
        )
        problems = [proc.stderr.strip()] if proc.returncode else []
        if not os.access(path, os.X_OK):
            problems.append("not executable (chmod +x)")
        out.append(
            Finding(str(path.relative_to(root)), "shell script", not problems, "; ".join(problems))
        )
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
        out.append(
            Finding(
                f"prefect.yaml:{dep.get('name')}",
                "prefect deployment",
                not problems,
                "; ".join(problems),
            )
        )
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
    for check in (
        check_yaml,
        check_compose,
        check_kubernetes,
        check_hostfile,
        check_scripts,
        check_dockerfile,
        check_prefect_yaml,
        check_dvc_yaml,
    ):
        try:
            findings.extend(check(root))
        except Exception as exc:  # noqa: BLE001 - report, do not crash the whole run
            findings.append(
                Finding(check.__name__, check.__name__, False, f"{type(exc).__name__}: {exc}")
            )
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
