"""Alerts: Prefect automations that call a webhook, and the ``skysense.model.promoted`` event.

:func:`ensure_alerts` saves a Prefect ``Webhook`` block (its URL from ``pipeline.alert_webhook``
or ``SKYSENSE_ALERT_WEBHOOK_URL``; a secret in the block, never in the automation) and creates,
or replaces, these automations on the Prefect server of ``PREFECT_API_URL``:

- ``skysense-run-failed``: a flow run of the pipeline entered ``Failed`` or ``Crashed``;
- ``skysense-run-late``: a scheduled run was not started on time (Prefect marks it ``Late``),
  i.e. the weekly run did not happen;
- ``skysense-promoted-predict`` (when a predict deployment is named): the
  ``skysense.model.promoted`` event runs that deployment with the new champion.

Each webhook call posts a JSON body with the event, the flow run and its state.
:func:`emit_promoted` emits the promotion event (resource ``mlflow.model.<name>``, payload
version and URI); ``skysense pipeline serve`` calls :func:`ensure_alerts` before serving.
"""

from __future__ import annotations

import os
from typing import Any
from uuid import UUID

from prefect.automations import Automation
from prefect.blocks.webhook import Webhook
from prefect.events import emit_event
from prefect.events.actions import CallWebhook, RunDeployment
from prefect.events.schemas.automations import EventTrigger, Posture
from pydantic import SecretStr

from skysense.config import ALERT_WEBHOOK_ENV

WEBHOOK_ENV = ALERT_WEBHOOK_ENV
WEBHOOK_BLOCK = "skysense-alerts"
PROMOTED_EVENT = "skysense.model.promoted"
FAILED = "skysense-run-failed"
LATE = "skysense-run-late"
PROMOTED = "skysense-promoted-predict"

PAYLOAD = (
    '{"alert": "{{ automation.name }}", "event": "{{ event.event }}", '
    '"flow_run": "{{ event.resource.name }}", "flow_run_id": "{{ event.resource.id }}", '
    '"state": "{{ event.resource[\'prefect.state-name\'] }}", "occurred": "{{ event.occurred }}"}'
)


def webhook_url(configured: str | None) -> str | None:
    """The alert URL: ``SKYSENSE_ALERT_WEBHOOK_URL`` when set, else ``pipeline.alert_webhook``."""
    return os.environ.get(WEBHOOK_ENV) or configured or None


def _replace(automation: Automation) -> UUID:
    try:
        Automation.read(name=automation.name).delete()
    except ValueError:  # no automation of that name yet
        pass
    return automation.create().id


def ensure_alerts(
    url: str,
    flow_names: list[str],
    predict_deployment_id: UUID | str | None = None,
    late_after_s: float = 0.0,
) -> dict[str, UUID]:
    """Save the webhook block and (re)create the automations (see the module docstring).

    Args:
        url: where alerts are posted (HTTP(S)).
        flow_names: the flows watched (``skysense-pipeline``...).
        predict_deployment_id: the deployment a promotion runs, if any.
        late_after_s: a ``Late`` run alerts once it stays late this long (0: at once).

    Returns:
        Automation ids by name, and the webhook block's as ``webhook``.
    """
    block_id = Webhook(method="POST", url=SecretStr(url)).save(WEBHOOK_BLOCK, overwrite=True)
    related = (
        {"prefect.resource.role": "flow", "prefect.resource.name": flow_names} if flow_names else {}
    )
    webhook = CallWebhook(block_document_id=block_id, payload=PAYLOAD)
    ids: dict[str, Any] = {"webhook": block_id}
    ids[FAILED] = _replace(
        Automation(
            name=FAILED,
            description="A SkySense pipeline run failed or crashed",
            trigger=EventTrigger(
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related=related,
                expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                posture=Posture.Reactive,
                threshold=1,
            ),
            actions=[webhook],
        )
    )
    ids[LATE] = _replace(
        Automation(
            name=LATE,
            description="A scheduled SkySense run did not start on time",
            trigger=EventTrigger(
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related=related,
                expect={"prefect.flow-run.Late"},
                posture=Posture.Reactive,
                threshold=1,
                within=late_after_s,
            ),
            actions=[webhook],
        )
    )
    if predict_deployment_id is not None:
        ids[PROMOTED] = _replace(
            Automation(
                name=PROMOTED,
                description="A new champion: run the predict deployment",
                trigger=EventTrigger(
                    match={"prefect.resource.id": "mlflow.model.*"},
                    expect={PROMOTED_EVENT},
                    posture=Posture.Reactive,
                    threshold=1,
                ),
                actions=[
                    RunDeployment(
                        source="selected",
                        deployment_id=UUID(str(predict_deployment_id)),
                        parameters={"model_uri": "{{ event.payload.model_uri }}"},
                    ),
                    webhook,
                ],
            )
        )
    return ids


def emit_promoted(model_name: str, version: str, tracking_uri: str | None = None) -> Any:
    """Emit ``skysense.model.promoted`` for ``model_name`` version ``version``."""
    from skysense.core.credentials import strip_credentials

    return emit_event(
        event=PROMOTED_EVENT,
        resource={
            "prefect.resource.id": f"mlflow.model.{model_name}",
            "prefect.resource.name": model_name,
        },
        payload={
            "model": model_name,
            "version": str(version),
            "model_uri": f"models:/{model_name}/{version}",
            "tracking_uri": strip_credentials(tracking_uri) if tracking_uri else None,
        },
    )
