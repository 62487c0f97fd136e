"""Label-scarce probes: k labelled samples per class, paired draws, metrics.json keys, the text."""

from __future__ import annotations

import numpy as np
import pytest

from skysense.evaluation import few_shot
from skysense.evaluation.gain_table import gain_lines
from skysense.evaluation.settings import EvalConfig
from skysense.registry.policy import decide_promotion
from skysense.registry.settings import MetricRule, PromotionPolicy

CFG = EvalConfig(linear_epochs=60, seg_epochs=30, draws=5, shots=[1, 5])


def _places(n_per_class: int = 12, n_classes: int = 4, n_places: int = 3, seed: int = 0):
    """Features where class c sits around its own centre (informative) and pure noise."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.repeat(np.arange(n_classes), n_per_class // n_places), n_places)
    groups = np.repeat([f"p{i}" for i in range(n_places)], len(labels) // n_places)
    centres = rng.normal(0, 3, (n_classes, 16))
    good = centres[labels] + rng.normal(0, 1, (len(labels), 16))
    noise = rng.normal(0, 1, (len(labels), 16))
    return good.astype(np.float32), noise.astype(np.float32), labels, groups


def test_k_per_class_draws_at_most_k_from_the_pool_and_is_seeded():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 8)
    pool = np.arange(4, len(labels))
    a = few_shot.k_per_class(labels, pool, 5, np.random.default_rng(1))
    b = few_shot.k_per_class(labels, pool, 5, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert set(a) <= set(pool)
    counts = np.bincount(labels[a], minlength=3)
    assert counts.tolist() == [5, 3, 5]  # class 1 has only 3 samples: all kept


def test_subsets_leave_the_tested_place_out_and_differ_between_draws():
    _, _, labels, groups = _places()
    subsets = few_shot.draw_subsets(labels, groups, 2, 3, CFG)
    assert len(subsets) == 3 and len(subsets[0]) == 3  # 3 draws x 3 places
    for draw in subsets:
        for train, test in draw:
            assert not set(groups[train]) & set(groups[test])
            assert np.bincount(labels[train]).max() <= 2
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(subsets[0], subsets[1], strict=True))


def test_informative_features_beat_noise_with_five_labels_and_the_gain_is_paired():
    good, noise, labels, groups = _places()
    table = few_shot.few_shot_table(
        {"pretrained": good, "random": noise}, labels, 4, CFG, [1, 5], CFG.draws, groups
    )
    k5 = few_shot.summarise(table[5], 5)
    assert k5["k5_linear_acc"] > 0.8 and k5["k5_linear_acc_random"] < 0.5
    assert k5["k5_knn_acc"] > 0.8
    paired = table[5]["pretrained"]["linear_acc"] - table[5]["random"]["linear_acc"]
    assert k5["k5_linear_acc_gain"] == pytest.approx(paired.mean())
    assert k5["k5_linear_acc_gain_std"] == pytest.approx(paired.std())
    assert {"k5_linear_acc_std", "k5_macro_f1_gain", "k5_knn_acc_random_std"} <= set(k5)
    assert len(table[1]["random"]["linear_acc"]) == CFG.draws


def test_segmentation_with_k_labelled_chips_per_dominant_class():
    rng = np.random.default_rng(0)
    n, s, d = 24, 4, 6
    masks = np.repeat(np.arange(3), n // 3)[:, None, None] * np.ones((1, s, s), dtype=np.int64)
    masks[:, 0, 0] = 255  # unlabelled pixels are ignored
    centres = rng.normal(0, 3, (3, d))
    pixels = centres[masks.clip(0, 2)].transpose(0, 3, 1, 2) + rng.normal(0, 0.5, (n, d, s, s))
    groups = np.tile(["a", "b", "c"], n // 3)
    out = few_shot.few_shot_segmentation(
        {"pretrained": pixels.astype(np.float32)}, masks, 3, CFG, [1], 3, groups
    )
    assert out[1]["pretrained"]["miou"].shape == (3,)
    assert out[1]["pretrained"]["miou"].min() > 0.9


def test_gain_lines_show_every_label_and_five_per_class():
    m = {"linear_acc": 0.8, "linear_acc_random": 0.7, "linear_acc_gain": 0.1}
    m.update(
        few_shot.summarise(
            {
                "pretrained": {"linear_acc": np.array([0.6, 0.5])},
                "random": {"linear_acc": np.array([0.4, 0.4])},
            },
            5,
        )
    )
    lines = gain_lines(m)
    assert any("all" in x and "+0.1000" in x for x in lines)
    assert any("5/class" in x and "+0.1500 +-0.050" in x for x in lines)


def test_the_policy_decides_on_a_label_scarce_gain():
    policy = PromotionPolicy(
        decide={"k5_linear_acc_gain": MetricRule(min_improvement=0.01)},
        no_regress={"k5_miou": 0.02},
    )
    champion = {"k5_linear_acc_gain": 0.05, "k5_miou": 0.40}
    better = decide_promotion(
        {"k5_linear_acc_gain": 0.08, "k5_miou": 0.39}, champion, policy, "2", "1"
    )
    worse = decide_promotion(
        {"k5_linear_acc_gain": 0.055, "k5_miou": 0.41}, champion, policy, "3", "1"
    )
    assert better.passed and not worse.passed
    assert "k5_linear_acc_gain" in worse.reasons[0]


def test_batched_linear_fits_equal_separate_fits():
    from skysense.evaluation.probes import train_linear, train_linear_many

    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(n, 8)).astype(np.float32) for n in (30, 12)]
    ys = [rng.integers(0, 3, len(x)) for x in xs]
    many = train_linear_many(xs, ys, 3, epochs=40, seed=2)
    for x, y, (w, b) in zip(xs, ys, many, strict=True):
        w1, b1 = train_linear(x, y, 3, epochs=40, seed=2)
        np.testing.assert_allclose(w, w1, atol=1e-6)
        np.testing.assert_allclose(b, b1, atol=1e-6)
