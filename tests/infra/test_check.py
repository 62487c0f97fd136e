"""``make infra-check``: the infrastructure files pass the offline checks; broken copies fail."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _check_module():
    spec = importlib.util.spec_from_file_location("infra_check", ROOT / "infra" / "check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["infra_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _copy_project(dst: Path) -> Path:
    shutil.copytree(ROOT / "infra", dst / "infra")
    shutil.copytree(ROOT / "flows", dst / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    for name in (
        "prefect.yaml",
        "dvc.yaml",
        "params.yaml",
        "pyproject.toml",
        "constraints.txt",
        "README.md",
    ):
        shutil.copy(ROOT / name, dst / name)
    (dst / "skysense").mkdir()
    return dst


def test_infra_check_passes_on_the_repository():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "infra" / "check.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout
    checked = proc.stdout
    for expected in (
        "compose-spec schema",
        "kubernetes schema",
        "deepspeed hostfile",
        "dockerfile",
        "prefect deployment",
        "dvc schema",
        "yamllint",
        "loopback binds",
        "per-service env files",
        "variables in env files",
        "servers require a login",
        "scoped MinIO credentials",
    ):
        assert expected in checked


@pytest.mark.parametrize(
    ("path", "old", "new", "check"),
    [
        (
            "infra/compose.yaml",
            "    restart: unless-stopped\n",
            "    restartt: unless-stopped\n",
            "compose-spec schema",
        ),
        # (these two named infra/.env.example and ${POSTGRES_PASSWORD}: the shared .env is gone)
        (
            "infra/compose.yaml",
            "      POSTGRES_DB: skysense\n",
            "      POSTGRES_DB: skysense\n      POSTGRES_PASSWORD: hunter2\n",
            "no literal secrets",
        ),
        (
            "infra/env/minio.env.example",
            "MINIO_ROOT_PASSWORD=",
            "# MINIO_ROOT_PASSWORD=",
            "variables in env files",
        ),
        (
            "infra/compose.yaml",
            "      AWS_ENDPOINT_URL: http://minio:9000\n",
            (
                "      AWS_ENDPOINT_URL: http://minio:9000\n"
                "      MLFLOW_TRACKING_URI: http://admin:pw@mlflow:5000\n"
            ),
            "no literal secrets",
        ),
        ("infra/compose.yaml", '"127.0.0.1:5000:5000"', '"5000:5000"', "loopback binds"),
        ("infra/compose.yaml", '"127.0.0.1:4200:4200"', '"0.0.0.0:4200:4200"', "loopback binds"),
        (
            "infra/compose.yaml",
            "env_file: env/prefect.env",
            "env_file: .env",
            "per-service env files",
        ),
        (
            "infra/compose.yaml",
            "    image: ${SKYSENSE_IMAGE:-skysense:latest}\n    restart",
            "    image: ${SKYSENSE_IMAGE}\n    restart",
            "variables have defaults",
        ),
        ("infra/compose.yaml", "      - --app-name=basic-auth\n", "", "servers require a login"),
        (
            "infra/env/prefect.env.example",
            "PREFECT_SERVER_API_AUTH_STRING=",
            "# PREFECT_SERVER_API_AUTH_STRING=",
            "servers require a login",
        ),
        (
            "infra/compose.yaml",
            "    env_file: env/worker.env\n",
            "    env_file: env/minio.env\n",
            "scoped MinIO credentials",
        ),
        (
            "infra/k8s/train-job.yaml",
            "restartPolicy: Never",
            "restartPolicy: Always",
            "kubernetes schema",
        ),
        (
            "infra/k8s/prefect-worker.yaml",
            "      app.kubernetes.io/name: prefect-worker\n  template:",
            "      app.kubernetes.io/name: other\n  template:",
            "kubernetes schema",
        ),
        (
            "infra/deepspeed/hostfile.example",
            "train-node-1 slots=8",
            "train-node-1 slots=eight",
            "deepspeed hostfile",
        ),
        (
            "prefect.yaml",
            "flows/pipeline.py:pipeline",
            "flows/pipeline.py:no_such_flow",
            "prefect deployment",
        ),
        ("dvc.yaml", "    cmd: skysense train", "    cmdd: skysense train", "dvc schema"),
        ("infra/compose.yaml", "name: skysense\n", "name: skysense\n  bad: [indent\n", "yaml"),
    ],
)
def test_infra_check_catches_a_broken_file(tmp_path, path, old, new, check):
    root = _copy_project(tmp_path)
    target = root / path
    text = target.read_text()
    assert old in text, f"{old!r} not in {path}"
    target.write_text(text.replace(old, new, 1))
    findings = _check_module().check_all(root)
    failed = [f for f in findings if not f.ok]
    assert failed, "the broken file passed"
    assert any(f.check == check or f.check.startswith(check) for f in failed), failed
    assert _check_module().main([str(root)]) == 1
