"""Gated promotion of the ``challenger`` to ``champion``, and rollback, with aliases only.

Every change happens under :class:`~skysense.registry.lock.PromotionLock`: the champion is read
after the lock is held (compare-and-set: an ``expected_champion`` that no longer holds is a
conflict), the alias is switched and read back. Each promotion, refusal and rollback is recorded in
the version's tags (``promotion.*``) and appended to the model-level ``promotion_history`` tag
(JSON list); ``champion_stack`` lists the champions in order, so a rollback returns to the one
before, and a second rollback to the one before that.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skysense.config import PromotionPolicy
from skysense.errors import RegistryError
from skysense.registry.lock import PromotionLock, owner_identity
from skysense.registry.policy import PolicyDecision, decide_promotion, metrics_from_tags

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "promotion_history"
STACK_TAG = "champion_stack"
MAX_HISTORY = 200


@dataclass
class PromotionResult:
    """What a promotion or rollback did."""

    action: str  # "promote" | "refuse" | "rollback"
    version: str
    previous_champion: str | None
    champion: str | None
    decision: PolicyDecision | None = None
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def promoted(self) -> bool:
        """True when the champion alias now points at ``version`` because of this call."""
        return self.action in ("promote", "rollback")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "action": self.action,
            "version": self.version,
            "previous_champion": self.previous_champion,
            "champion": self.champion,
            "decision": self.decision.to_dict() if self.decision else None,
            "record": self.record,
        }


def now_iso() -> str:
    """UTC time now, ISO 8601 to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version behind ``name@alias``, or ``None`` when the alias (or the model) is not set.

    Any other failure (server down, not an MLflow server, store error) is raised: it must not
    read as "no champion".
    """
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def read_history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """The model-level promotion history (oldest first)."""
    raw = client.get_registered_model(name).tags.get(HISTORY_TAG)
    return json.loads(raw) if raw else []


def _read_stack(client: MlflowClient, name: str) -> list[str]:
    raw = client.get_registered_model(name).tags.get(STACK_TAG)
    return [str(v) for v in json.loads(raw)] if raw else []


def _append_history(client: MlflowClient, name: str, record: dict[str, Any]) -> None:
    history = read_history(client, name)
    history.append(record)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-MAX_HISTORY:]))


def _actor(what: str) -> dict[str, str]:
    return {"at": now_iso(), "by": owner_identity(), "what": what or " ".join(sys.argv[:3])}


def _switch_champion(client: MlflowClient, name: str, version: str, lock: PromotionLock) -> None:
    """Set ``champion`` to ``version`` while holding ``lock``, and verify it by reading back."""
    if not lock.holds():
        raise RegistryError(
            f"registered model {name!r}: promotion lock lost (expired?) before the switch; "
            "nothing was changed, run the promotion again"
        )
    client.set_registered_model_alias(name, CHAMPION, version)
    now = alias_version(client, name, CHAMPION)
    if now is None or str(now.version) != str(version):
        raise RegistryError(
            f"registered model {name!r}: champion alias reads back "
            f"{None if now is None else now.version} after setting it to {version}"
        )


def promote(
    client: MlflowClient,
    name: str,
    policy: PromotionPolicy,
    version: str | None = None,
    expected_champion: str | None = None,
    sqlite_db: Path | None = None,
    what: str = "",
    lock_settle_s: float = 0.4,
) -> PromotionResult:
    """Make the challenger (or ``version``) the champion when it passes ``policy``.

    Args:
        client: MLflow client of the registry.
        name: registered model name.
        policy: ``registry.policy``.
        version: the version to promote; default: the one behind ``@challenger``.
        expected_champion: compare-and-set; when given, the champion must still be this version
            (``"none"`` for no champion) or the call fails without changing anything.
        sqlite_db: the SQLite file of the store, if any (adds a file lock).
        what: the command or flow that asks (recorded).
        lock_settle_s: settle delay of the tag lock.

    Returns:
        The result: ``action`` is ``"promote"`` or ``"refuse"``, with the decision.

    Raises:
        RegistryError: no challenger, unknown version, a compare-and-set conflict.
    """
    if version is None:
        mv = alias_version(client, name, CHALLENGER)
        if mv is None:
            raise RegistryError(
                f"registered model {name!r} has no {CHALLENGER!r} alias; run `skysense register` "
                "first or pass --version"
            )
        version = str(mv.version)
    with PromotionLock(client, name, sqlite_db, settle_s=lock_settle_s) as lock:
        challenger = client.get_model_version(name, version)
        champ = alias_version(client, name, CHAMPION)
        champ_version = None if champ is None else str(champ.version)
        if expected_champion is not None and str(expected_champion) != str(champ_version or "none"):
            raise RegistryError(
                f"registered model {name!r}: champion is v{champ_version}, not the expected "
                f"v{expected_champion}; someone promoted meanwhile, re-read and decide again"
            )
        if champ_version == str(version):
            raise RegistryError(f"{name} v{version} is already the champion; nothing to do")
        decision = decide_promotion(
            metrics_from_tags(challenger.tags),
            None if champ is None else metrics_from_tags(champ.tags),
            policy, str(version), champ_version,
        )
        record = {
            "action": "promote" if decision.passed else "refuse",
            "version": str(version),
            "previous_champion": champ_version,
            "reasons": decision.reasons,
            "compared": decision.compared(),
            **_actor(what),
        }
        if decision.passed:
            _switch_champion(client, name, str(version), lock)
            stack = _read_stack(client, name)
            if champ_version is not None and (not stack or stack[-1] != champ_version):
                stack.append(champ_version)
            stack.append(str(version))
            client.set_registered_model_tag(name, STACK_TAG, json.dumps(stack))
            # ``challenger`` stays on the newest registered version: after a promotion the
            # version carries both aliases, and the next `skysense register` moves it on.
            _tag_version(client, name, str(version), {
                "promotion.status": "champion",
                "promotion.promoted_at": record["at"],
                "promotion.promoted_by": record["by"],
                "promotion.previous_champion": str(champ_version),
                "promotion.reasons": "\n".join(decision.reasons),
                "promotion.compared": json.dumps(decision.compared()),
            })
            if champ_version is not None:
                _tag_version(client, name, champ_version, {
                    "promotion.status": "retired",
                    "promotion.retired_at": record["at"],
                    "promotion.replaced_by": str(version),
                })
        else:
            _tag_version(client, name, str(version), {
                "promotion.status": "refused",
                "promotion.refused_at": record["at"],
                "promotion.refused_by": record["by"],
                "promotion.refused_against": str(champ_version),
                "promotion.reasons": "\n".join(decision.reasons),
                "promotion.compared": json.dumps(decision.compared()),
            })
        _append_history(client, name, record)
    return PromotionResult(
        action=record["action"], version=str(version), previous_champion=champ_version,
        champion=str(version) if decision.passed else champ_version, decision=decision,
        record=record,
    )


def rollback(
    client: MlflowClient,
    name: str,
    reason: str = "",
    sqlite_db: Path | None = None,
    what: str = "",
    lock_settle_s: float = 0.4,
) -> PromotionResult:
    """Move ``champion`` back to the champion before the current one.

    Raises:
        RegistryError: no champion, or no earlier champion to return to.
    """
    with PromotionLock(client, name, sqlite_db, settle_s=lock_settle_s) as lock:
        champ = alias_version(client, name, CHAMPION)
        if champ is None:
            raise RegistryError(f"registered model {name!r} has no champion to roll back")
        current = str(champ.version)
        stack = _read_stack(client, name)
        if not stack or stack[-1] != current:
            stack.append(current)  # alias was set outside this tool: treat it as the top
        if len(stack) < 2:
            raise RegistryError(
                f"registered model {name!r}: champion v{current} has no previous champion to "
                "roll back to"
            )
        stack.pop()
        target = stack[-1]
        now_m = metrics_from_tags(champ.tags)
        back_m = metrics_from_tags(client.get_model_version(name, target).tags)
        record = {
            "action": "rollback",
            "version": target,
            "previous_champion": current,
            "reasons": [reason or "manual rollback"],
            "compared": {k: {"restored": back_m.get(k), "rolled_back": now_m.get(k)}
                         for k in sorted(set(now_m) | set(back_m))
                         if not k.endswith(("_random", "_gain"))},
            **_actor(what),
        }
        _switch_champion(client, name, target, lock)
        client.set_registered_model_tag(name, STACK_TAG, json.dumps(stack))
        _tag_version(client, name, current, {
            "promotion.status": "rolled_back",
            "promotion.rolled_back_at": record["at"],
            "promotion.rolled_back_by": record["by"],
            "promotion.rollback_reason": record["reasons"][0],
            "promotion.rolled_back_to": target,
        })
        _tag_version(client, name, target, {
            "promotion.status": "champion",
            "promotion.restored_at": record["at"],
            "promotion.restored_by": record["by"],
        })
        _append_history(client, name, record)
    return PromotionResult(action="rollback", version=target, previous_champion=current,
                           champion=target, record=record)


def _tag_version(client: MlflowClient, name: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)

