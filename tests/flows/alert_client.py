"""Run against a real Prefect server (PREFECT_API_URL): create the alerts, fail a flow run, make a
scheduled run late, and emit a promotion. Used by ``test_alerts.py`` in a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Scheduled

from flows.alerts import emit_promoted, ensure_alerts

FLOW = "skysense-alert-test"


@flow(name=FLOW)
def weekly_run(fail: bool = True) -> None:
    """A pipeline stand-in that fails."""
    if fail:
        raise RuntimeError("validation gate refused the new imagery")


async def late_run() -> str:
    """A deployment of the flow with nobody serving it, and a run scheduled in the past."""
    async with get_client() as client:
        flow_id = await client.create_flow(weekly_run)
        deployment_id = await client.create_deployment(flow_id=flow_id, name="weekly")
        run = await client.create_flow_run_from_deployment(
            deployment_id,
            state=Scheduled(scheduled_time=datetime.now(UTC) - timedelta(minutes=5)),
        )
        return str(run.id)


def main(url: str) -> None:
    ids = ensure_alerts(url, [FLOW])
    again = ensure_alerts(url, [FLOW])  # idempotent: replaced, not duplicated
    try:
        weekly_run()
    except RuntimeError:
        pass
    late = asyncio.run(late_run())
    event = emit_promoted("skysense-encoder", "7", "http://user:secret@mlflow:5000")
    print(json.dumps({"ids": {k: str(v) for k, v in ids.items()},
                      "again": {k: str(v) for k, v in again.items()},
                      "late_run": late, "event": str(event.id) if event else None}))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
