"""Small synthetic batches for the model tests (tiny preset, chips of a few pixels)."""

from __future__ import annotations

import os

# Sleeping (not spinning) OpenMP threads: on a shared 2-core runner, spinning threads make each
# small op wait for a descheduled peer (4-5x the CPU time). Only takes effect when torch is not
# loaded yet in this process (tests/models alone or first); CI should export it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch

from skysense.models import create_model


def _make_batch(
    b: int = 2,
    s: int = 4,
    t2: int = 3,
    t1: int = 2,
    seed: int = 0,
    modalities=("hr", "s2", "s1", "dem"),
    n_regions: int = 64,
) -> dict:
    """A batch in the layout of docs/interfaces.md with every modality listed."""
    g = torch.Generator().manual_seed(seed)
    batch: dict = {"region": torch.randint(0, n_regions, (b,), generator=g)}
    if "hr" in modalities:
        batch["hr"] = torch.randn(b, 4, 32 * s, 32 * s, generator=g)
        batch["has_hr"] = torch.ones(b, dtype=torch.bool)
    if "s2" in modalities:
        batch["s2"] = torch.randn(b, t2, 10, s, s, generator=g)
        batch["s2_doy"] = torch.randint(1, 367, (b, t2), generator=g)
        batch["s2_valid"] = torch.ones(b, t2, dtype=torch.bool)
        batch["has_s2"] = torch.ones(b, dtype=torch.bool)
    if "s1" in modalities:
        batch["s1"] = torch.randn(b, t1, 2, s, s, generator=g)
        batch["s1_doy"] = torch.randint(1, 367, (b, t1), generator=g)
        batch["s1_valid"] = torch.ones(b, t1, dtype=torch.bool)
        batch["has_s1"] = torch.ones(b, dtype=torch.bool)
    if "dem" in modalities:
        batch["dem"] = torch.randn(b, 1, s, s, generator=g)
        batch["has_dem"] = torch.ones(b, dtype=torch.bool)
    return batch


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("skysense-tiny", sentinel_px=4).eval()


@pytest.fixture
def make_batch():
    """Factory of synthetic batches: ``make_batch(b, s, t2, t1, seed, modalities)``."""
    return _make_batch


@pytest.fixture(autouse=True)
def one_thread():
    """Run every model test's many small ops on one intra-op thread: with tiny tensors a second
    thread gains little and, when OpenMP spins on a busy runner, costs several times the CPU
    time (the loss-fall test: 10 s wall on one thread, 22 s on two sleeping, 93 s on two
    spinning threads, on the loaded 2-core machine).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
