"""``skysense predict``: sliding-window embeddings (or class maps) of a GeoTIFF scene."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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


def register(app: typer.Typer) -> None:
    """Add this concern's commands to the app."""

    @app.command("predict")
    def predict_cmd(
        inputs: Annotated[
            list[str],
            typer.Option(
                "--input",
                help="Sentinel-2 raster, [YYYY-MM-DD=]PATH; repeat for a time series "
                "(the first defines the output grid)",
            ),
        ],
        output: Annotated[
            Path,
            typer.Option(
                "--output", help="output Cloud-Optimised GeoTIFF (its STAC item: <stem>.json)"
            ),
        ],
        model: Annotated[
            str,
            typer.Option(
                "--model", help="models:/NAME@ALIAS, models:/NAME/VERSION or an export folder"
            ),
        ] = "",
        s1: Annotated[
            list[str] | None,
            typer.Option(
                "--s1", help="Sentinel-1 VV/VH raster (dB), [YYYY-MM-DD=]PATH; repeatable"
            ),
        ] = None,
        hr: Annotated[Path | None, typer.Option("--hr", help="very-high-resolution raster")] = None,
        dem: Annotated[Path | None, typer.Option("--dem", help="elevation raster, metres")] = None,
        head: Annotated[
            Path | None,
            typer.Option(
                "--head", help="probe head .npz (from `skysense evaluate`): write a class map"
            ),
        ] = None,
        probabilities: Annotated[
            Path | None,
            typer.Option(
                "--probabilities",
                help="with a task model: also write the per-class probabilities (float32, one "
                "band per class) to this GeoTIFF",
            ),
        ] = None,
        tracking_uri: TrackingUriOpt = None,
        params: ParamsOpt = None,
        set_: SetOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Embed a scene of any size with overlap blending into a Cloud-Optimised GeoTIFF.

        Windows are predict.window pixels with predict.overlap; the output is on the grid of the
        first --input (or, with predict.crs, that raster's footprint on a 10 m grid in that CRS;
        every input is warped onto it), nodata where every S2 date was nodata, with overviews
        (average; mode for class maps). Beside it, <stem>.json is its STAC item (model and
        version, input scenes, bands, projection). --model defaults
        to models:/<registry.model_name>@champion (or models:/NAME/VERSION, or an export
        folder); a registered model's safetensors weights are checked against the version's
        checkpoint_sha256 before they are loaded. --output must not be one of the inputs; it is
        written to a hidden temporary file beside it and moved into place when complete.

        A task model (`skysense finetune`; e.g. models:/skysense-landcover@champion) writes a
        class map instead: uint8, nodata 255, its colour table and class names (band tags
        `classes`, `class_<id>`), and with --probabilities the blended class probabilities.
        """
        from skysense.inference.class_map import ClassMapHead
        from skysense.inference.outputs import refuse_input_as_output
        from skysense.inference.predict import ProbeHead, predict_scene
        from skysense.inference.scene import Scene, parse_dated
        from skysense.inference.stac_item import ModelIdentity
        from skysense.registry.model_loading import (
            embedder_of,
            is_task_model,
            load_encoder,
            resolved_source,
            task_model_predictor,
        )
        from skysense.tracking.store import connect

        cfg = load(params, set_)
        uri = model or f"models:/{cfg.registry.model_name}@champion"
        try:
            s2_rasters = [parse_dated(v) for v in inputs]
            s1_rasters = [parse_dated(v) for v in (s1 or [])]
            for path in (hr, dem, head):
                if path is not None and not path.is_file():
                    fail(f"{path}: no such file")
            refuse_input_as_output(
                output,
                [r.path for r in (*s2_rasters, *s1_rasters)]
                + [p for p in (hr, dem, head) if p is not None],
            )
            client = (
                connect(tracking_uri, cfg.registry.tracking_uri)
                if uri.startswith("models:/")
                else None
            )
            probe: ProbeHead | ClassMapHead | None
            if is_task_model(uri, client):
                if head is not None:
                    fail(f"--head is a probe on an encoder's embeddings; {uri} has its own head")
                embed, task_config = task_model_predictor(uri, cfg.predict.device, client)
                probe = ClassMapHead.from_config(task_config)
                identity = ModelIdentity(uri, *resolved_source(uri, client))
            else:
                if probabilities is not None and head is None:
                    fail(f"--probabilities needs a task model; {uri} is an encoder")
                encoder = load_encoder(uri, cfg.predict.device, client)
                embed = embedder_of(encoder)
                probe = ProbeHead.load(head) if head is not None else None
                identity = ModelIdentity(uri, encoder.source, encoder.version)
            with Scene(s2_rasters, s1_rasters, hr, dem, crs=cfg.predict.crs) as scene:
                summary = predict_scene(
                    scene,
                    embed,
                    output,
                    window=cfg.predict.window,
                    overlap=cfg.predict.overlap,
                    batch_size=cfg.predict.batch_size,
                    output_dtype=cfg.predict.output_dtype,
                    head=probe,
                    block=cfg.predict.block,
                    progress=not as_json,
                    probabilities=probabilities,
                    overview_resampling=(
                        cfg.predict.class_overviews if probe else cfg.predict.embedding_overviews
                    ),
                    model=identity,
                )
        except user_errors() as exc:
            fail(str(exc))
        if as_json:
            emit_json(summary.to_dict())
        else:
            out.print(
                f"{summary.output}: {summary.width} x {summary.height} px, {summary.bands} "
                f"bands, {summary.km2:.2f} km2 in {summary.seconds:.1f} s "
                f"({summary.windows_computed} windows)",
                highlight=False,
            )
