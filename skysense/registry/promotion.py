"""Gated promotion of the ``challenger`` to ``champion``, and rollback, with aliases only.

Every change happens under :class:`~skysense.registry.lock.PromotionLock` (an exclusive lock:
PostgreSQL advisory lock or ``flock``), and every write re-checks that the lock is still held: the
champion is read after the lock is held (compare-and-set: an ``expected_champion`` that no longer
holds is a conflict), the alias is switched and read back. Each promotion, refusal and rollback is
recorded in the version's tags (``promotion.*``) and in the model's history: one tag per entry,
``promotion_history.<seq>`` with a sequence number taken under the lock, so entries are appended,
never rewritten, and none is lost (a model promoted before this layout keeps its old
``promotion_history`` JSON list; it is read first). ``champion_stack`` lists the champions in
order, so a rollback returns to the one before, and a second rollback to the one before that.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skysense.core.errors import RegistryError
from skysense.registry.lock import PromotionLock, owner_identity
from skysense.registry.policy import (
    PolicyDecision,
    RuleResult,
    decide_promotion,
    metrics_from_tags,
)
from skysense.registry.settings import PromotionPolicy

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "promotion_history"  # the legacy single-tag JSON list, read only
HISTORY_ENTRY_PREFIX = HISTORY_TAG + "."
STACK_TAG = "champion_stack"
#: What a version needs besides its metrics: the reasons it cannot be promoted (empty: none).
Requirement = Callable[["ModelVersion"], list[str]]


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


def _history_entries(tags: dict[str, str]) -> list[tuple[int, dict[str, Any]]]:
    entries = []
    for key, raw in tags.items():
        seq = key[len(HISTORY_ENTRY_PREFIX) :]
        if key.startswith(HISTORY_ENTRY_PREFIX) and seq.isdigit():
            entries.append((int(seq), json.loads(raw)))
    return sorted(entries, key=lambda e: e[0])


def read_history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """The model-level promotion history (oldest first): the legacy JSON list, then one entry
    per ``promotion_history.<seq>`` tag in sequence order.
    """
    tags = client.get_registered_model(name).tags
    legacy = json.loads(tags[HISTORY_TAG]) if tags.get(HISTORY_TAG) else []
    return legacy + [record for _, record in _history_entries(tags)]


def _read_stack(client: MlflowClient, name: str) -> list[str]:
    raw = client.get_registered_model(name).tags.get(STACK_TAG)
    return [str(v) for v in json.loads(raw)] if raw else []


def _append_history(
    client: MlflowClient, name: str, record: dict[str, Any], lock: PromotionLock
) -> None:
    """Add ``record`` as the next ``promotion_history.<seq>`` tag (a new key: nothing earlier is
    rewritten); the sequence number is read and written under ``lock``.
    """
    entries = _history_entries(client.get_registered_model(name).tags)
    seq = entries[-1][0] + 1 if entries else 1
    lock.ensure_held()
    client.set_registered_model_tag(name, f"{HISTORY_ENTRY_PREFIX}{seq:06d}", json.dumps(record))


def _set_model_tag(
    client: MlflowClient, name: str, key: str, value: str, lock: PromotionLock
) -> None:
    lock.ensure_held()
    client.set_registered_model_tag(name, key, value)


def _actor(what: str) -> dict[str, str]:
    return {"at": now_iso(), "by": owner_identity(), "what": what or " ".join(sys.argv[:3])}


def _switch_champion(client: MlflowClient, name: str, version: str, lock: PromotionLock) -> None:
    """Set ``champion`` to ``version`` while holding ``lock``, and verify it by reading back."""
    lock.ensure_held()
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
    lock_url: str | None = None,
    lock_timeout_s: float = 120.0,
    requires: Requirement | None = None,
) -> PromotionResult:
    """Make the challenger (or ``version``) the champion when it passes ``policy``.

    Args:
        client: MLflow client of the registry.
        name: registered model name.
        policy: ``registry.policy``.
        version: the version to promote; default: the one behind ``@challenger``.
        expected_champion: compare-and-set; when given, the champion must still be this version
            (``"none"`` for no champion) or the call fails without changing anything.
        sqlite_db: the SQLite file of the store, if any (else taken from the client's URI).
        what: the command or flow that asks (recorded).
        lock_url: ``registry.lock_url`` (the server's backend database; see
            :mod:`skysense.registry.lock`); default ``SKYSENSE_REGISTRY_LOCK_URL``.
        lock_timeout_s: how long to wait for another promotion to finish.
        requires: a check of what the challenger needs beyond its metrics (a task model: its
            encoder in the registry); the reasons it returns refuse the promotion.

    Returns:
        The result: ``action`` is ``"promote"`` or ``"refuse"``, with the decision.

    Raises:
        RegistryError: no challenger, unknown version, a compare-and-set conflict.
        PromotionLockError: the lock cannot be taken, or was lost before a write.
    """
    if version is None:
        mv = alias_version(client, name, CHALLENGER)
        if mv is None:
            raise RegistryError(
                f"registered model {name!r} has no {CHALLENGER!r} alias; run `skysense register` "
                "first or pass --version"
            )
        version = str(mv.version)
    with PromotionLock(
        client, name, sqlite_db, lock_url=lock_url, timeout_s=lock_timeout_s
    ) as lock:
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
            policy,
            str(version),
            champ_version,
        )
        if requires is not None:
            missing = requires(challenger)
            decision.rules.extend(
                RuleResult("requires", "requires", None, None, 0.0, not missing, reason or "ok")
                for reason in (missing or ["requirements met"])
            )
            decision.passed = decision.passed and not missing
        action = "promote" if decision.passed else "refuse"
        actor = _actor(what)
        record: dict[str, Any] = {
            "action": action,
            "version": str(version),
            "previous_champion": champ_version,
            "reasons": decision.reasons,
            "compared": decision.compared(),
            **actor,
        }
        if decision.passed:
            _switch_champion(client, name, str(version), lock)
            stack = _read_stack(client, name)
            if champ_version is not None and (not stack or stack[-1] != champ_version):
                stack.append(champ_version)
            stack.append(str(version))
            _set_model_tag(client, name, STACK_TAG, json.dumps(stack), lock)
            # ``challenger`` stays on the newest registered version: after a promotion the
            # version carries both aliases, and the next `skysense register` moves it on.
            _tag_version(
                client,
                name,
                str(version),
                lock,
                {
                    "promotion.status": "champion",
                    "promotion.promoted_at": actor["at"],
                    "promotion.promoted_by": actor["by"],
                    "promotion.previous_champion": str(champ_version),
                    "promotion.reasons": "\n".join(decision.reasons),
                    "promotion.compared": json.dumps(decision.compared()),
                },
            )
            if champ_version is not None:
                _tag_version(
                    client,
                    name,
                    champ_version,
                    lock,
                    {
                        "promotion.status": "retired",
                        "promotion.retired_at": actor["at"],
                        "promotion.replaced_by": str(version),
                    },
                )
        else:
            _tag_version(
                client,
                name,
                str(version),
                lock,
                {
                    "promotion.status": "refused",
                    "promotion.refused_at": actor["at"],
                    "promotion.refused_by": actor["by"],
                    "promotion.refused_against": str(champ_version),
                    "promotion.reasons": "\n".join(decision.reasons),
                    "promotion.compared": json.dumps(decision.compared()),
                },
            )
        _append_history(client, name, record, lock)
    return PromotionResult(
        action=action,
        version=str(version),
        previous_champion=champ_version,
        champion=str(version) if decision.passed else champ_version,
        decision=decision,
        record=record,
    )


def rollback(
    client: MlflowClient,
    name: str,
    reason: str = "",
    sqlite_db: Path | None = None,
    what: str = "",
    lock_url: str | None = None,
    lock_timeout_s: float = 120.0,
) -> PromotionResult:
    """Move ``champion`` back to the champion before the current one.

    Args: as :func:`promote`; ``reason`` is recorded.

    Raises:
        RegistryError: no champion, or no earlier champion to return to.
        PromotionLockError: the lock cannot be taken, or was lost before a write.
    """
    with PromotionLock(
        client, name, sqlite_db, lock_url=lock_url, timeout_s=lock_timeout_s
    ) as lock:
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
        reasons = [reason or "manual rollback"]
        actor = _actor(what)
        record: dict[str, Any] = {
            "action": "rollback",
            "version": target,
            "previous_champion": current,
            "reasons": reasons,
            "compared": {
                k: {"restored": back_m.get(k), "rolled_back": now_m.get(k)}
                for k in sorted(set(now_m) | set(back_m))
                if not k.endswith(("_random", "_gain"))
            },
            **actor,
        }
        _switch_champion(client, name, target, lock)
        _set_model_tag(client, name, STACK_TAG, json.dumps(stack), lock)
        _tag_version(
            client,
            name,
            current,
            lock,
            {
                "promotion.status": "rolled_back",
                "promotion.rolled_back_at": actor["at"],
                "promotion.rolled_back_by": actor["by"],
                "promotion.rollback_reason": reasons[0],
                "promotion.rolled_back_to": target,
            },
        )
        _tag_version(
            client,
            name,
            target,
            lock,
            {
                "promotion.status": "champion",
                "promotion.restored_at": actor["at"],
                "promotion.restored_by": actor["by"],
            },
        )
        _append_history(client, name, record, lock)
    return PromotionResult(
        action="rollback", version=target, previous_champion=current, champion=target, record=record
    )


def _tag_version(
    client: MlflowClient, name: str, version: str, lock: PromotionLock, tags: dict[str, str]
) -> None:
    """Set version tags one by one, each after checking that ``lock`` is still held."""
    for key, value in tags.items():
        lock.ensure_held()
        client.set_model_version_tag(name, version, key, value)
