"""A GX checkpoint action that posts failed validations to a webhook (the alerts' receiver).

GX runs the action after every checkpoint run; it posts only when the run failed (an expectation
not met: rasters or locations about to be quarantined), as JSON: the checkpoint, its run id, the
data asset and, per failed expectation, its type, column and the first unexpected ids. The URL is
``validation.failure_webhook`` (or ``SKYSENSE_ALERT_WEBHOOK_URL``), the same receiver as the
Prefect automations. A receiver that cannot be reached is logged, never fails the validation.

Imported only by :mod:`skysense.validation.gx_project`, which loads great-expectations lazily.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any, Literal

from great_expectations.checkpoint.actions import ValidationAction
from great_expectations.compatibility.pydantic import Field

from skysense.core.credentials import strip_credentials

logger = logging.getLogger(__name__)
MAX_IDS = 20


def failure_report(checkpoint_result: Any) -> dict[str, Any]:
    """The JSON body for a failed checkpoint run."""
    failed = []
    for identifier, vres in checkpoint_result.run_results.items():
        for res in vres.results:
            if res.success:
                continue
            cfg = res.expectation_config
            partial = (res.result or {}).get("partial_unexpected_index_list") or []
            failed.append(
                {
                    "asset": str(getattr(identifier, "batch_identifier", "")),
                    "expectation": cfg.type,
                    "column": cfg.kwargs.get("column"),
                    "unexpected_count": (res.result or {}).get("unexpected_count"),
                    "unexpected": [json.loads(json.dumps(p, default=str)) for p in partial][
                        :MAX_IDS
                    ],
                }
            )
    return {
        "alert": "skysense-validation-failed",
        "checkpoint": checkpoint_result.checkpoint_config.name,
        "run_id": str(checkpoint_result.run_id),
        "success": bool(checkpoint_result.success),
        "failed": failed,
    }


class FailureWebhookAction(ValidationAction):
    """POST a JSON report to ``url`` when the checkpoint run failed.

    ``url`` is kept out of the stored checkpoint (``gx/checkpoints/*.json``, a cached validation
    output): a webhook URL usually carries its token.
    """

    type: Literal["skysense_failure_webhook"] = "skysense_failure_webhook"
    url: str | None = Field(None, exclude=True, repr=False)
    timeout_s: float = 10.0

    def run(self, checkpoint_result: Any, action_context: Any = None) -> dict[str, Any]:
        """Post the failures (nothing on success); errors are logged, not raised."""
        if checkpoint_result.success:
            return {"posted": False}
        if not self.url:  # a checkpoint read back from its store: the URL was not stored
            return {"posted": False, "error": "no webhook URL in this process"}
        body = json.dumps(failure_report(checkpoint_result)).encode()
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                return {"posted": True, "status": resp.status}
        except (urllib.error.URLError, OSError) as exc:
            logger.warning(
                "validation alert to %s not delivered (%s)", strip_credentials(self.url), exc
            )
            return {"posted": False, "error": str(exc)}
