"""``skysense pipeline``: run the whole pipeline now, or serve it on a schedule (Prefect)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skysense.cli.common import JsonOpt, ParamsOpt, SetOpt, emit_json, fail, load, out
from skysense.evaluation.gain_table import GAIN_METRICS, gain_lines


def _print_summary(summary: dict, params_file: Path) -> None:
    """The champion, its metrics, and where to look."""
    out.print(
        f"[bold]Pipeline finished[/] in {summary['wall_seconds']:.1f} s "
        f"(DVC: {'on' if summary['use_dvc'] else 'off'}, fan-out: {summary['task_runner']})"
    )
    for st in summary["stages"]:
        out.print(
            f"  {st['stage']:<9} {'ran' if st['ran'] else 'up to date':<11} {st['seconds']:6.1f} s"
        )
    promo = summary.get("promotion", {})
    out.print(
        f"Registered version: v{summary['registered_version']} "
        f"({'new' if summary['created'] else 'already registered'}); "
        f"promotion: {promo.get('action')}"
    )
    champion = summary.get("champion_version")
    out.print(
        f"[bold green]Champion:[/] {summary.get('model_name', 'model')} v{champion}"
        if champion
        else "[bold yellow]No champion yet[/]"
    )
    metrics = summary.get("champion_metrics") or {}
    numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    # pre-trained vs twin: every label and 5 labels per class (metrics.json has every k)
    for line in gain_lines(numeric, shots=[5]):
        out.print(f"  {line}", highlight=False)
    for name, value in sorted(metrics.items()):
        if name.startswith("k") and name.split("_", 1)[0][1:].isdigit():
            continue  # the label-scarce probes: in metrics.json, `skysense evaluate`, MLflow
        if name.endswith(("_random", "_gain")) and name.rsplit("_", 1)[0] in metrics:
            continue
        if name in GAIN_METRICS:
            continue  # in the table above
        out.print(
            f"  {name:<24} {value:.4f}" if isinstance(value, float) else f"  {name:<24} {value}"
        )
    from skysense.core.credentials import strip_credentials

    uri = strip_credentials(summary.get("tracking_uri", ""))
    out.print("Where to look:")
    if uri.startswith("sqlite:"):
        out.print(f"  models and runs : mlflow ui --backend-store-uri {uri}")
    else:
        out.print(f"  models and runs : {uri}")
    for key, link in (summary.get("links") or {}).items():
        out.print(f"  {key:<15} : {strip_credentials(link)}")
    out.print(
        "  flow runs       : prefect server start   (same PREFECT_HOME), then http://127.0.0.1:4200"
    )
    out.print("  metrics / plots : dvc metrics show; dvc plots show")
    out.print(f"  params          : {params_file}")


def register(app: typer.Typer) -> None:
    """Add the ``pipeline`` group: ``run`` and ``serve``."""
    group = typer.Typer(
        help="Orchestration: the whole pipeline as a Prefect flow.", no_args_is_help=True
    )

    @group.command("run")
    def run(
        params: ParamsOpt = None,
        overrides: SetOpt = None,
        dvc: Annotated[
            bool | None,
            typer.Option(
                "--dvc/--no-dvc", help="run stages via dvc repro (default: pipeline.use_dvc)"
            ),
        ] = None,
        sample: Annotated[
            bool,
            typer.Option("--sample/--no-sample", help="write the bundled synthetic sample first"),
        ] = True,
        promote: Annotated[
            bool,
            typer.Option("--promote/--no-promote", help="promote the challenger when it passes"),
        ] = True,
        lock_wait: Annotated[
            float,
            typer.Option(
                "--lock-wait",
                min=0.0,
                help=(
                    "seconds to wait for another pipeline run in this folder "
                    "(default: fail at once)"
                ),
            ),
        ] = 0.0,
        as_json: JsonOpt = False,
    ) -> None:
        """Run sample -> validate -> chip -> train -> evaluate -> register -> promote now.

        Prefect runs in its ephemeral mode (no server to start); runs are kept under
        PREFECT_HOME (default ./.prefect). One run at a time per project folder: a second one
        waits --lock-wait seconds for .skysense/pipeline.lock, then fails naming its holder.
        """
        cfg = load(params, overrides)  # fail early on a bad params file or override
        from flows import environment

        environment.configure(".")  # Prefect's home (seeded with its schema) only for a run
        params_file = params or Path("params.yaml")
        from flows.pipeline import pipeline
        from skysense.core.errors import SkySenseError

        state = pipeline(
            params_path=str(params_file),
            overrides=list(overrides or []),
            use_dvc=dvc,
            run_sample=sample,
            promote=promote,
            project_root=".",
            lock_wait_s=lock_wait,
            return_state=True,
        )
        try:
            summary = state.result(raise_on_failure=True)
        except SkySenseError as exc:
            fail(f"pipeline flow run {state.state_details.flow_run_id} {state.name}: {exc}", code=1)
        except Exception as exc:  # noqa: BLE001 - an unexpected crash: say which run, keep going out
            fail(
                f"pipeline flow run {state.state_details.flow_run_id} {state.name}: "
                f"{type(exc).__name__}: {exc}",
                code=1,
            )
        summary.update(
            model_name=cfg.registry.model_name,
            flow_state=state.name,
            flow_run_id=str(state.state_details.flow_run_id),
        )
        if as_json:
            emit_json(summary)
        else:
            _print_summary(summary, params_file)

    @group.command("serve")
    def serve(
        params: ParamsOpt = None,
        overrides: SetOpt = None,
        cron: Annotated[
            str | None,
            typer.Option("--cron", help='schedule, e.g. "0 2 * * 1" (default: pipeline.cron)'),
        ] = None,
        name: Annotated[
            str, typer.Option("--name", help="deployment name")
        ] = "skysense-pipeline-scheduled",
    ) -> None:
        """Serve the pipeline flow on a cron schedule (long-running).

        The schedule lives in the Prefect server named by PREFECT_API_URL (start one with
        `prefect server start`); runs execute in this process. With pipeline.alert_webhook (or
        SKYSENSE_ALERT_WEBHOOK_URL) set, automations post failed, crashed and late runs there.
        """
        cfg = load(params, overrides)
        from flows import environment

        environment.configure(".")
        schedule = cron or cfg.pipeline.cron
        if len(schedule.split()) != 5:
            fail(f'--cron {schedule!r} is not a 5-field cron expression, e.g. "0 2 * * 1"')
        from flows.alerts import ensure_alerts, webhook_url
        from flows.pipeline import pipeline

        url = webhook_url(cfg.pipeline.alert_webhook)
        if url:  # failed, crashed and late runs of the pipeline post to it
            ensure_alerts(url, ["skysense-pipeline"])
            out.print("Alerts: Prefect automations skysense-run-failed, skysense-run-late.")
        out.print(f"Serving {name} on cron {schedule!r}; Ctrl-C to stop.")
        pipeline.serve(
            name=name,
            cron=schedule,
            parameters={
                "params_path": str(params or "params.yaml"),
                "overrides": list(overrides or []),
            },
            tags=["skysense"],
        )

    app.add_typer(group, name="pipeline")
