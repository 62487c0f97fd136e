"""The promotion policy: may a challenger's metrics replace the champion's?

``registry.policy`` in ``params.yaml`` names the metrics (flat keys of ``metrics.json``, e.g.
``linear_acc``, ``miou``):

- ``decide``: each must improve on the champion by at least ``min_improvement`` (in the metric's
  own units, e.g. 0.01 = one point of accuracy); all of them must pass.
- ``no_regress``: each may be worse than the champion by at most its tolerance.
- ``no_regress_each``: a metric-name prefix and a tolerance, applied as ``no_regress`` to every
  metric of the champion with that prefix (e.g. ``iou.``: every class's IoU of a task model).

Without a champion every challenger that has the ``decide`` metrics passes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from skysense.registry.settings import PromotionPolicy

METRIC_TAG_PREFIX = "metric."


@dataclass
class RuleResult:
    """The outcome of one rule on one metric."""

    metric: str
    kind: str  # "decide" | "no_regress"
    challenger: float | None
    champion: float | None
    threshold: float
    passed: bool
    reason: str


@dataclass
class PolicyDecision:
    """Whether the challenger passes, and why (one line per rule, with the numbers)."""

    passed: bool
    champion_version: str | None
    challenger_version: str
    rules: list[RuleResult] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        """Human-readable reason of every rule, failed ones first."""
        ordered = sorted(self.rules, key=lambda r: r.passed)
        return [("FAIL " if not r.passed else "ok   ") + r.reason for r in ordered]

    def compared(self) -> dict[str, dict[str, float | None]]:
        """The metrics that were compared: ``{metric: {challenger, champion}}``."""
        return {r.metric: {"challenger": r.challenger, "champion": r.champion} for r in self.rules}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for tags and ``--json``)."""
        return {
            "passed": self.passed,
            "champion_version": self.champion_version,
            "challenger_version": self.challenger_version,
            "rules": [asdict(r) for r in self.rules],
        }


def metrics_from_tags(tags: dict[str, str]) -> dict[str, float]:
    """Evaluation metrics stored on a model version as ``metric.<name>`` tags."""
    out: dict[str, float] = {}
    for key, value in tags.items():
        if key.startswith(METRIC_TAG_PREFIX):
            try:
                out[key[len(METRIC_TAG_PREFIX) :]] = float(value)
            except ValueError:
                continue
    return out


def decide_promotion(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    policy: PromotionPolicy,
    challenger_version: str,
    champion_version: str | None,
) -> PolicyDecision:
    """Apply ``policy`` to the challenger's metrics against the champion's.

    Args:
        challenger: the challenger's metrics (flat keys, e.g. ``linear_acc``).
        champion: the champion's metrics, or ``None`` when there is no champion.
        policy: ``registry.policy``.
        challenger_version: version number of the challenger (for messages).
        champion_version: version number of the champion, or ``None``.

    Returns:
        The decision; ``passed`` is True only when every rule passes.
    """
    rules: list[RuleResult] = []
    for name, rule in policy.decide.items():
        ch = challenger.get(name)
        if ch is None or not math.isfinite(ch):  # no value
            rules.append(
                RuleResult(
                    name,
                    "decide",
                    ch,
                    None,
                    rule.min_improvement,
                    False,
                    f"{name}: challenger v{challenger_version} has no value; "
                    "run `skysense evaluate` and register with its metrics.json",
                )
            )
            continue
        if champion is None:
            rules.append(
                RuleResult(
                    name,
                    "decide",
                    ch,
                    None,
                    rule.min_improvement,
                    True,
                    f"{name}={ch:.4f}: no champion yet, first promotion",
                )
            )
            continue
        cp = champion.get(name)
        if cp is None or not math.isfinite(cp):  # no value
            rules.append(
                RuleResult(
                    name,
                    "decide",
                    ch,
                    cp,
                    rule.min_improvement,
                    True,
                    f"{name}={ch:.4f}: champion v{champion_version} has no value, nothing to beat",
                )
            )
            continue
        gain = (ch - cp) if rule.higher_is_better else (cp - ch)
        ok = gain >= rule.min_improvement - 1e-12
        direction = "higher" if rule.higher_is_better else "lower"
        rules.append(
            RuleResult(
                name,
                "decide",
                ch,
                cp,
                rule.min_improvement,
                ok,
                f"{name}: challenger {ch:.4f} vs champion {cp:.4f} ({direction} is better): "
                f"improvement {gain:+.4f} {'>=' if ok else '<'} required "
                f"{rule.min_improvement:.4f}",
            )
        )
    no_regress = dict(policy.no_regress)
    for prefix, tolerance in policy.no_regress_each.items():
        for name in sorted(set(champion or {}) | set(challenger)):
            if name.startswith(prefix):
                no_regress.setdefault(name, tolerance)
    for name, tolerance in no_regress.items():
        decide_rule = policy.decide.get(name)
        higher = True if decide_rule is None else decide_rule.higher_is_better
        ch = challenger.get(name)
        cp = None if champion is None else champion.get(name)
        if cp is None or not math.isfinite(cp):  # no value
            rules.append(
                RuleResult(
                    name,
                    "no_regress",
                    ch,
                    cp,
                    tolerance,
                    True,
                    f"{name}: no champion value, no regression possible",
                )
            )
            continue
        if ch is None or not math.isfinite(ch):  # no value
            rules.append(
                RuleResult(
                    name,
                    "no_regress",
                    ch,
                    cp,
                    tolerance,
                    False,
                    f"{name}: challenger v{challenger_version} has no value but "
                    f"champion has {cp:.4f}; evaluate it on the same sets",
                )
            )
            continue
        drop = (cp - ch) if higher else (ch - cp)
        ok = drop <= tolerance + 1e-12
        rules.append(
            RuleResult(
                name,
                "no_regress",
                ch,
                cp,
                tolerance,
                ok,
                f"{name}: challenger {ch:.4f} vs champion {cp:.4f}: regression "
                f"{max(drop, 0.0):.4f} "
                f"{'<=' if ok else '>'} tolerance {tolerance:.4f}",
            )
        )
    return PolicyDecision(
        passed=all(r.passed for r in rules),
        champion_version=champion_version,
        challenger_version=challenger_version,
        rules=rules,
    )
