"""``skysense evaluate``: frozen-encoder probes against a random-init twin."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skysense.cli.common import (
    JsonOpt,
    NoMlflowOpt,
    ParamsOpt,
    SetOpt,
    TrackingUriOpt,
    emit_json,
    fail,
    load,
    out,
    user_errors,
)


def register(app: typer.Typer) -> None:
    """Add this concern's commands to the app."""

    @app.command("evaluate")
    def evaluate_cmd(
        export: Annotated[
            Path | None, typer.Option("--export", help="export folder (default: paths.export)")
        ] = None,
        downstream: Annotated[
            Path | None,
            typer.Option("--downstream", help="downstream sets (default: paths.downstream)"),
        ] = None,
        out_dir: Annotated[
            Path | None, typer.Option("--out", help="report folder (default: paths.eval)")
        ] = None,
        no_mlflow: NoMlflowOpt = False,
        tracking_uri: TrackingUriOpt = None,
        params: ParamsOpt = None,
        set_: SetOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Linear probe, k-NN and segmentation probe of the frozen encoder and of its random-init
        twin; writes metrics.json (with *_random and *_gain), PNGs and per-class tables, and
        logs them as a child run of the training run.
        """
        from skysense.evaluation.gain_table import gain_lines
        from skysense.evaluation.report import log_to_mlflow
        from skysense.evaluation.runner import evaluate_export
        from skysense.registry.export_registration import training_run_id
        from skysense.tracking.store import connect, ensure_experiment, resolve_tracking_uri

        cfg = load(params, set_)
        export_dir = export or cfg.paths.export
        target = out_dir or cfg.paths.eval
        try:
            result = evaluate_export(
                cfg.eval,
                cfg.model.modalities,
                export_dir,
                downstream or cfg.paths.downstream,
                target,
            )
            run_id = None
            if not no_mlflow:
                uri = resolve_tracking_uri(tracking_uri, cfg.registry.tracking_uri)
                client = connect(uri)
                exp = ensure_experiment(
                    client, cfg.train.experiment, cfg.registry.artifact_location, uri
                )
                run_id = log_to_mlflow(
                    result["metrics"],
                    result["files"],
                    training_run_id(export_dir, result["config"]),
                    exp,
                    downstream_dir=Path(downstream or cfg.paths.downstream),
                )
        except user_errors() as exc:
            fail(str(exc))
        m = result["metrics"]
        if as_json:
            emit_json(
                {"metrics": m, "files": [str(f) for f in result["files"]], "mlflow_run_id": run_id}
            )
            return
        for line in gain_lines(m):
            out.print(line, highlight=False)
        shown = {k for k in m if k.startswith("k") and k.split("_", 1)[0][1:].isdigit()}
        for key in sorted(k for k in m if k not in shown and not k.endswith(("_random", "_gain"))):
            extra = (
                f"  random {m[key + '_random']:.4f}  gain {m[key + '_gain']:+.4f}"
                if key + "_gain" in m
                else ""
            )
            out.print(f"{key:22s} {m[key]:.4f}{extra}", highlight=False)
        out.print(f"report: {target}", highlight=False)
