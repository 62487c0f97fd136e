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
    for name in ("prefect.yaml", "dvc.yaml", "params.yaml", "pyproject.toml", "constraints.txt",
                 "README.md"):
        shutil.copy(ROOT / name, dst / name)
    (dst / "skysense").mkdir()
    return dst


def test_infra_check_passes_on_the_repository():
    proc = subprocess.run([sys.executable, str(ROOT / "infra" / "check.py")], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout
    checked = proc.stdout
    for expected in ("compose-spec schema", "kubernetes schema", "deepspeed hostfile",
                     "dockerfile", "prefect deployment", "dvc schema", "yamllint"):
        assert expected in checked


@pytest.mark.parametrize(
    ("path", "old", "new", "check"),
    [
        ("infra/compose.yaml", "    restart: unless-stopped\n", "    restartt: unless-stopped\n",
         "compose-spec schema"),
        ("infra/compose.yaml", "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in infra/.env}",
         "POSTGRES_PASSWORD: hunter2", "no literal secrets"),
        ("infra/.env.example", "MINIO_ROOT_PASSWORD=", "# MINIO_ROOT_PASSWORD=", "variables in .env.example"),
        ("infra/k8s/train-job.yaml", "restartPolicy: Never", "restartPolicy: Always", "kubernetes schema"),
        ("infra/k8s/prefect-worker.yaml", "      app.kubernetes.io/name: prefect-worker\n  template:",
         "      app.kubernetes.io/name: other\n  template:", "kubernetes schema"),
        ("infra/deepspeed/hostfile.example", "train-node-1 slots=8", "train-node-1 slots=eight",
         "deepspeed hostfile"),
        ("prefect.yaml", "flows/pipeline.py:pipeline", "flows/pipeline.py:no_such_flow", "prefect deployment"),
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
