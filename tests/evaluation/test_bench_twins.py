"""The benches' twins: a changed date table brings the plain-table twin beside the configured
one, and a gain is claimed only against the stronger of the two.
"""

import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from gain_protocol import twins, weakest_gain

from skysense.config import apply_overrides, config_from_dict


def _cfg(*overrides):
    return config_from_dict(apply_overrides({}, list(overrides)), "<test>")


def test_plain_date_table_has_one_twin():
    assert list(twins(_cfg())) == ["random"]


def test_annual_table_adds_the_plain_twin_that_differs_only_in_the_date_table():
    got = twins(_cfg("model.overrides.date_init=annual", "model.overrides.date_smoothing_days=15"))
    assert list(got) == ["random", "random_plain"]
    conf, plain = got["random"], got["random_plain"]
    assert conf.spec.date_init == "annual" and conf.spec.date_smoothing_days == 15
    assert plain.spec.date_init == "normal" and plain.spec.date_smoothing_days == 0
    assert dataclasses.replace(conf.spec, date_init="normal", date_smoothing_days=0.0) == plain.spec
    shapes = {k: v.shape for k, v in conf.state_dict().items()}
    assert shapes == {k: v.shape for k, v in plain.state_dict().items()}
    # the annual rows are the sines and cosines of the year, the plain ones random draws
    assert not torch.equal(conf.date_encoding.weight, plain.date_encoding.weight)


def test_weakest_gain_is_the_gain_over_the_stronger_twin():
    row = {
        "pretrained_gain": {"mean": 0.30, "std": 0.02},
        "pretrained_gain_plain": {"mean": 0.12, "std": 0.05},
    }
    assert weakest_gain(row, "pretrained") == {"mean": 0.12, "std": 0.05}
    assert weakest_gain({"pretrained_gain": {"mean": 0.2, "std": 0.0}}, "pretrained")["mean"] == 0.2
    assert weakest_gain({}, "pretrained") is None
