"""``no_regress_each``: a tolerance for every metric of a prefix (a task model's per-class IoU)."""

from __future__ import annotations

from skysense.registry.policy import decide_promotion
from skysense.registry.settings import task_model_policy


def test_each_class_iou_may_not_regress_beyond_the_tolerance():
    policy = task_model_policy()
    champion = {"miou": 0.50, "iou.water": 0.80, "iou.forest": 0.40}
    better_but_forest_drops = {"miou": 0.55, "iou.water": 0.95, "iou.forest": 0.30}
    decision = decide_promotion(better_but_forest_drops, champion, policy, "2", "1")
    assert not decision.passed
    failed = [r.metric for r in decision.rules if not r.passed]
    assert failed == ["iou.forest"]
    assert any(line.startswith("FAIL iou.forest") for line in decision.reasons)

    within = {"miou": 0.55, "iou.water": 0.78, "iou.forest": 0.37}
    assert decide_promotion(within, champion, policy, "3", "1").passed


def test_a_class_the_challenger_lost_is_a_failed_rule_and_none_without_champion():
    policy = task_model_policy()
    champion = {"miou": 0.50, "iou.water": 0.80}
    missing = decide_promotion({"miou": 0.60}, champion, policy, "2", "1")
    assert not missing.passed and "has no value" in " ".join(missing.reasons)
    assert decide_promotion({"miou": 0.1, "iou.water": 0.1}, None, policy, "1", None).passed
