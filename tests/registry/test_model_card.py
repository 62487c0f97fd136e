"""The model card's evaluation table: full-label metrics first, label-scarce ones with spread."""

from __future__ import annotations

from skysense.registry.model_card import evaluation_table


def test_label_scarce_metrics_show_their_spread_after_the_full_label_ones():
    table = evaluation_table(
        {
            "linear_acc": 0.8,
            "linear_acc_random": 0.7,
            "linear_acc_gain": 0.1,
            "k5_linear_acc": 0.6,
            "k5_linear_acc_std": 0.02,
            "k5_linear_acc_random": 0.5,
            "k5_linear_acc_random_std": 0.03,
            "k5_linear_acc_gain": 0.1,
            "k5_linear_acc_gain_std": 0.01,
        }
    ).splitlines()
    assert table[2] == "| linear_acc | 0.8000 | 0.7000 | +0.1000 |"
    assert table[3] == "| k5_linear_acc | 0.6000 ± 0.0200 | 0.5000 ± 0.0300 | +0.1000 ± 0.0100 |"
    assert len(table) == 4  # no row of its own for a _std key
