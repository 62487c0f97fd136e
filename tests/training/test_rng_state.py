"""The RNG states a checkpoint records: a round trip restores the draws; a numpy global bit
generator other than MT19937 (whose legacy state is a dict, not a tuple) is a clear error.
"""

from __future__ import annotations

import json
import random
import warnings

import numpy as np
import pytest
import torch

from skysense.core.errors import TrainingError
from skysense.training.checkpoints import rng_state, set_rng_state


def _draws() -> tuple[float, list[float], list[float]]:
    return random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()


def test_rng_state_round_trip_through_json_restores_python_numpy_and_torch_draws() -> None:
    state = json.loads(json.dumps(rng_state()))  # what the checkpoint stores
    first = _draws()
    set_rng_state(state)
    assert _draws() == first


def test_rng_state_with_a_non_mt19937_numpy_generator_names_the_generator() -> None:
    original = np.random.get_bit_generator()
    np.random.set_bit_generator(np.random.PCG64(0))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy warns that legacy needs MT19937
            with pytest.raises(TrainingError, match="PCG64, not MT19937"):
                rng_state()
    finally:
        np.random.set_bit_generator(original)
    assert isinstance(np.random.get_state(legacy=True), tuple)
