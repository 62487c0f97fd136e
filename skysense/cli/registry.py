"""``skysense`` commands of the registry concern: ``register``, ``promote``, ``registry status``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from skysense.cli.common import (
    JsonOpt,
    ParamsOpt,
    SetOpt,
    TrackingUriOpt,
    emit_json,
    fail,
    load,
    out,
    user_errors,
)
from skysense.config import registration_settings
from skysense.core.exit_codes import ExitCode


def _connect(cfg: Any, uri: str | None):
    from skysense.tracking.store import connect, resolve_tracking_uri, sqlite_path

    resolved = resolve_tracking_uri(uri, cfg.registry.tracking_uri)
    return connect(resolved), resolved, sqlite_path(resolved)


def _failures(cfg: Any, uri: str | None):
    """MLflow/HTTP/store failures as one-line named errors (exit 4), for the URI in use."""
    from skysense.tracking.store import registry_failures, resolve_tracking_uri

    return registry_failures(resolve_tracking_uri(uri, cfg.registry.tracking_uri))


def _metric(metrics: dict[str, float], key: str) -> str:
    return f"{metrics[key]:.4f}" if key in metrics else ""


def _print_status(status: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{status['name']}  aliases: {status['aliases']}", show_edge=False)
    for col in (
        "version",
        "aliases",
        "status",
        "linear_acc",
        "gain",
        "miou",
        "data_version",
        "created",
    ):
        table.add_column(col)
    for v in status["versions"]:
        shown = [_metric(v["metrics"], k) for k in ("linear_acc", "linear_acc_gain", "miou")]
        table.add_row(
            v["version"],
            ",".join(v["aliases"]),
            v["status"],
            *shown,
            v["data_version"][:20],
            v["created"],
        )
    out.print(table)
    for h in status["history"][-10:]:
        out.print(
            f"{h['at']}  {h['action']:8s} v{h['version']} (was v{h['previous_champion']}) "
            f"by {h['by']}: {'; '.join(h['reasons'])[:160]}",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    """Add this concern's commands to the app."""

    @app.command("register")
    def register_cmd(
        export: Annotated[
            Path | None, typer.Option("--export", help="export folder (default: paths.export)")
        ] = None,
        metrics: Annotated[
            Path | None,
            typer.Option(
                "--metrics",
                help="metrics.json of `skysense evaluate` (default: paths.eval), or of "
                "`skysense finetune` with --task-model (default: paths.finetune)",
            ),
        ] = None,
        task_model: Annotated[
            Path | None,
            typer.Option(
                "--task-model",
                help="register this task model export (skysense finetune) as "
                "registry.task_model_name instead of the encoder",
            ),
        ] = None,
        tracking_uri: TrackingUriOpt = None,
        params: ParamsOpt = None,
        set_: SetOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Log the exported encoder (or, with --task-model, a fine-tuned task model) as an MLflow
        pyfunc and register it as the `challenger`.

        Tags the version with data version, git commit, params hash, checkpoint sha256 and every
        evaluation metric (a task model also with the encoder it started from and the label
        version); the model card is its description. The same checkpoint registers no new
        version.
        """
        from skysense.registry.export_registration import register_export
        from skysense.registry.task_registration import register_task_export
        from skysense.tracking.store import ensure_experiment

        cfg = load(params, set_)
        default_metrics = (
            cfg.paths.finetune / "metrics.json" if task_model else cfg.paths.eval / "metrics.json"
        )
        metrics_path = metrics or default_metrics
        values: dict[str, float] = {}
        if metrics_path.is_file():
            values = {
                k: float(v)
                for k, v in json.loads(metrics_path.read_text()).items()
                if isinstance(v, (int, float))
            }
        elif metrics is not None:
            fail(f"{metrics_path}: no such metrics file; run `skysense evaluate` first")
        try:
            with _failures(cfg, tracking_uri):
                client, uri, db = _connect(cfg, tracking_uri)
                if task_model is not None:
                    exp = ensure_experiment(
                        client, cfg.finetune.experiment, cfg.registry.artifact_location, uri
                    )
                    summary = metrics_path.with_name("summary.json")
                    run = (
                        json.loads(summary.read_text()).get("mlflow_run_id")
                        if summary.is_file()
                        else None
                    )
                    res = register_task_export(
                        client,
                        cfg.registry.task_model_name,
                        task_model,
                        values,
                        encoder_model_name=cfg.registry.model_name,
                        experiment_id=exp,
                        run_id=run,
                        sqlite_db=db,
                        lock_url=cfg.registry.lock_url,
                    )
                else:
                    exp = ensure_experiment(
                        client, cfg.train.experiment, cfg.registry.artifact_location, uri
                    )
                    res = register_export(
                        client,
                        registration_settings(cfg),
                        export or cfg.paths.export,
                        values,
                        experiment_id=exp,
                        sqlite_db=db,
                        lock_url=cfg.registry.lock_url,
                    )
        except user_errors() as exc:
            fail(exc)
        if as_json:
            emit_json(res.to_dict())
        else:
            word = "registered" if res.created else "already registered (same checkpoint)"
            if res.repaired:
                word += f"; repaired {', '.join(res.repaired)}"
            challenger = f"v{res.challenger}" if res.challenger else "not set"
            out.print(
                f"{res.name} v{res.version} {word}; challenger is {challenger}; {res.model_uri}",
                highlight=False,
            )

    @app.command("promote")
    def promote_cmd(
        version: Annotated[
            str | None, typer.Option("--version", help="version to promote (default: @challenger)")
        ] = None,
        rollback: Annotated[
            bool, typer.Option("--rollback", help="move champion back to the previous champion")
        ] = False,
        reason: Annotated[
            str, typer.Option("--reason", help="why (recorded with a rollback)")
        ] = "",
        expected_champion: Annotated[
            str | None,
            typer.Option(
                "--expected-champion",
                help="compare-and-set: fail unless the champion is this "
                "version ('none' for no champion)",
            ),
        ] = None,
        task_model: Annotated[
            bool,
            typer.Option(
                "--task-model",
                help="promote (or roll back) registry.task_model_name under registry.task_policy; "
                "refused while the encoder it was fine-tuned from is not registered",
            ),
        ] = False,
        tracking_uri: TrackingUriOpt = None,
        params: ParamsOpt = None,
        set_: SetOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Make the challenger the `champion` if it passes registry.policy, or roll back.

        Exit code 0 when promoted or rolled back, 1 when the policy refused (reasons printed and
        written to the version's tags), 2 on a usage error (no challenger, unknown version, a
        compare-and-set conflict), 4 when the MLflow server or store is unreachable or fails.
        """
        from skysense.registry.promotion import promote
        from skysense.registry.promotion import rollback as do_rollback
        from skysense.registry.task_lineage import encoder_requirement

        cfg = load(params, set_)
        name = cfg.registry.task_model_name if task_model else cfg.registry.model_name
        policy = cfg.registry.task_policy if task_model else cfg.registry.policy
        try:
            with _failures(cfg, tracking_uri):
                client, _, db = _connect(cfg, tracking_uri)
                if rollback:
                    res = do_rollback(
                        client,
                        name,
                        reason=reason,
                        sqlite_db=db,
                        what="skysense promote --rollback",
                        lock_url=cfg.registry.lock_url,
                    )
                else:
                    res = promote(
                        client,
                        name,
                        policy,
                        version=version,
                        expected_champion=expected_champion,
                        sqlite_db=db,
                        what="skysense promote" + (" --task-model" if task_model else ""),
                        lock_url=cfg.registry.lock_url,
                        requires=(
                            encoder_requirement(client, cfg.registry.model_name)
                            if task_model
                            else None
                        ),
                    )
        except user_errors() as exc:
            fail(exc)
        if as_json:
            emit_json(res.to_dict())
        else:
            verb = {"promote": "promoted", "refuse": "REFUSED", "rollback": "rolled back to"}
            out.print(
                f"{name}: {verb[res.action]} v{res.version}; champion is "
                f"v{res.champion} (was v{res.previous_champion})",
                highlight=False,
            )
            for line in res.record.get("reasons", []):
                out.print(f"  {line}", highlight=False)
        if res.action == "refuse":
            raise typer.Exit(ExitCode.REFUSED)

    registry_app = typer.Typer(help="Inspect the MLflow model registry.", no_args_is_help=True)

    @registry_app.command("status")
    def status_cmd(
        task_model: Annotated[
            bool, typer.Option("--task-model", help="show registry.task_model_name")
        ] = False,
        tracking_uri: TrackingUriOpt = None,
        params: ParamsOpt = None,
        set_: SetOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Versions with aliases, key metrics, data version, and the promotion history."""
        from skysense.registry.status import registry_status

        cfg = load(params, set_)
        try:
            with _failures(cfg, tracking_uri):
                client, _, _ = _connect(cfg, tracking_uri)
                status = registry_status(
                    client, cfg.registry.task_model_name if task_model else cfg.registry.model_name
                )
        except user_errors() as exc:
            fail(exc)
        if as_json:
            emit_json(status)
        else:
            _print_status(status)

    app.add_typer(registry_app, name="registry")
