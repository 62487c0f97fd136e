"""Heads refuse half-specified inputs with a clear error instead of a late TypeError."""

import numpy as np
import pytest

from skysense.inference.class_map import ClassMapHead
from skysense.inference.predict import ProbeHead


def test_probe_head_needs_mean_and_std_together():
    w, b = np.zeros((2, 3), np.float32), np.zeros(2, np.float32)
    with pytest.raises(ValueError, match="both mean and std"):
        ProbeHead(weight=w, bias=b, mean=np.zeros(3, np.float32))
    head = ProbeHead(weight=w, bias=b, mean=np.zeros(3, np.float32), std=np.ones(3, np.float32))
    assert head.classify(np.ones((3, 2, 2), np.float32)).shape == (2, 2)


def test_class_map_colours_are_rgb_triples():
    head = ClassMapHead.from_config({"classes": ["a", "b"], "colours": [[1, 2, 3], [4, 5, 6]]})
    assert head.colours == [(1, 2, 3), (4, 5, 6)]
    with pytest.raises(ValueError, match=r"\[r, g, b\]"):
        ClassMapHead.from_config({"classes": ["a"], "colours": [[1, 2, 3, 255]]})
