"""Rank variables a process sets for itself never leak into the runs it starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from skysense.training.engine import RANK_ENV_VARS, SELF_SET_ENV, child_env, ensure_process_env
from skysense.training.launch import thread_env, under_launcher


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch):
    for key in RANK_ENV_VARS:
        monkeypatch.delenv(key, raising=False)
    yield monkeypatch


def test_self_set_variables_are_not_a_launcher_and_not_inherited(clean_env) -> None:
    ensure_process_env()
    assert os.environ["WORLD_SIZE"] == "1" and os.environ[SELF_SET_ENV] == str(os.getpid())
    assert not under_launcher()
    env = child_env()
    assert not any(k in env for k in RANK_ENV_VARS)
    assert not any(k in thread_env(2) for k in RANK_ENV_VARS)


def test_launcher_variables_are_kept(clean_env) -> None:
    clean_env.setenv("RANK", "1")
    clean_env.setenv("WORLD_SIZE", "2")
    clean_env.setenv("MASTER_ADDR", "127.0.0.1")
    clean_env.setenv("MASTER_PORT", "29555")
    assert under_launcher()
    ensure_process_env()
    assert os.environ["MASTER_PORT"] == "29555" and os.environ["LOCAL_RANK"] == "1"
    assert child_env()["RANK"] == "1"


def test_a_child_that_inherited_them_picks_a_new_port(clean_env) -> None:
    ensure_process_env()
    code = (
        "import os; from skysense.training.engine import ensure_process_env as e; "
        "p = os.environ['MASTER_PORT']; e(); print(p, os.environ['MASTER_PORT'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ),
    ).stdout.split()
    assert out[0] == os.environ["MASTER_PORT"] and out[1] != out[0]
