"""Benchmark ``skysense predict``: km² per second and peak memory, scenes of 1x and 4x area,
the COG/overview overhead, and onnxruntime against PyTorch on the same windows.

A tiny SkySense encoder (random init, same cost as a trained one) is registered as a pyfunc in a
temporary SQLite MLflow store and served as ``models:/NAME@champion``. The scene is the real
BigEarthNet Sentinel-2 patch of ``tests/data/real/inference`` mirrored out to the wanted size
(10 bands, uint16 DN, its UTM grid), as a time series of ``--s2-dates`` dates; its real
Sentinel-1 pair likewise (``--s1-dates``); with ``--hr`` an HR raster 32x finer (the S2 RGB+NIR
upsampled: the cost, not the content, matters here). Each scene runs in its own subprocess,
which reports its own peak RSS (``ru_maxrss``), so the figures do not mix. ``cog_s`` is the
time of the COG copy with overviews (``cog_overhead`` its share of the prediction). With
``--onnx`` the encoder is exported for the window size and ``--onnx-windows`` windows of the 1x
scene are embedded by both PyTorch and onnxruntime (same inputs, batch ``--batch``).

Usage: ``python bench/predict_throughput.py [--side 256] [--window 32] [--overlap 8]
[--block 128] [--s2-dates 8] [--s1-dates 6] [--hr] [--onnx] [--out bench/out]``; prints a JSON
summary and writes ``predict_throughput.json``. A short run: ``--side 32 --hr --onnx``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "skysense-bench"


def make_scene(path: Path, side: int, modality: str = "s2") -> Path:
    """Mirror-tile the real 10-band S2 stack (or the VV/VH S1 pair) to ``side x side`` pixels
    (10 m), same CRS/origin.
    """
    import numpy as np
    import rasterio

    sys.path.insert(0, str(ROOT / "tests" / "inference"))
    from scene_fixtures import stack_s1, stack_s2

    base = path.with_name(f"base_{modality}.tif")
    base = stack_s2(base, nodata_corner=0) if modality == "s2" else stack_s1(base)
    with rasterio.open(base) as src:
        data, profile = src.read(), src.profile
    reps = -(-side // data.shape[1])
    tile = np.concatenate([data, data[:, ::-1]], axis=1)
    tile = np.concatenate([tile, tile[:, :, ::-1]], axis=2)
    big = np.tile(tile, (1, reps, reps))[:, :side, :side]
    profile.update(
        width=side, height=side, tiled=True, blockxsize=256, blockysize=256, compress="deflate"
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(big)
    return path


def make_hr(path: Path, s2: Path) -> Path:
    """An HR raster on the 32x finer grid of ``s2``: its B04 B03 B02 B08 upsampled, uint8."""
    import numpy as np
    import rasterio
    from affine import Affine

    from skysense.core.modalities import HR_RATIO

    with rasterio.open(s2) as src:
        rgbn = src.read([3, 2, 1, 7]).astype(np.float32)
        transform, crs = src.transform @ Affine.scale(1 / HR_RATIO), src.crs
    hr = np.clip(rgbn / 12, 0, 255).astype(np.uint8)
    hr = hr.repeat(HR_RATIO, axis=1).repeat(HR_RATIO, axis=2)
    profile = {
        "driver": "GTiff", "width": hr.shape[2], "height": hr.shape[1], "count": 4,
        "dtype": "uint8", "crs": crs, "transform": transform, "tiled": True,
        "blockxsize": 256, "blockysize": 256, "compress": "deflate",
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(hr)
        dst.descriptions = ("R", "G", "B", "N")
    return path


def series(path: Path, dates: int, first_month: int = 3) -> list[str]:
    """``dates`` dated copies of one raster (``YYYY-MM-DD=path``), two weeks apart."""
    import datetime as dt

    start = dt.date(2017, first_month, 1)
    return [f"{start + dt.timedelta(days=14 * i)}={path}" for i in range(dates)]


def register_tiny(store: Path) -> str:
    """Register a random-init tiny export as champion; return the tracking URI."""
    sys.path.insert(0, str(ROOT / "tests" / "inference"))
    from scene_fixtures import write_random_export

    from skysense.config import SkySenseConfig, registration_settings
    from skysense.registry.export_registration import register_export
    from skysense.registry.promotion import promote
    from skysense.tracking.store import connect, ensure_experiment, sqlite_path

    uri = f"sqlite:///{store / 'mlflow.db'}"
    cfg = SkySenseConfig()
    cfg.registry.model_name = NAME
    client = connect(uri)
    exp = ensure_experiment(client, "bench", store / "artifacts", uri)
    register_export(
        client,
        registration_settings(cfg),
        write_random_export(store / "export"),
        {"linear_acc": 0.0},
        experiment_id=exp,
        sqlite_db=sqlite_path(uri),
    )
    promote(client, NAME, cfg.registry.policy, sqlite_db=sqlite_path(uri))
    return uri


def run_one(inputs: dict, output: Path, window: int, overlap: int, block: int, onnx: dict) -> dict:
    """Predict one scene in this process; report time, area, COG overhead and peak RSS (and,
    with ``onnx``, onnxruntime against PyTorch on the same windows).
    """
    from skysense.inference.predict import predict_scene
    from skysense.inference.scene import Scene, parse_dated
    from skysense.registry.model_loading import embedder_of, load_encoder

    encoder = load_encoder(f"models:/{NAME}@champion", "auto")
    embed = embedder_of(encoder)
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    hr = Path(inputs["hr"]) if inputs.get("hr") else None
    with Scene(
        [parse_dated(v) for v in inputs["s2"]], [parse_dated(v) for v in inputs["s1"]], hr
    ) as sc:
        summary = predict_scene(
            sc,
            embed,
            output,
            window=window,
            overlap=overlap,
            batch_size=4,
            block=block,
            progress=False,
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        compare = onnx_against_torch(sc, encoder, window, **onnx) if onnx else None
    return {
        **summary.to_dict(),
        "km2_per_s": summary.km2 / summary.seconds,
        "cog_overhead": round(summary.cog_seconds / summary.seconds, 4),
        "peak_rss_mb": round(peak, 1),
        "rss_after_model_load_mb": round(rss_loaded, 1),
        **({"onnx": compare} if compare else {}),
    }


def onnx_against_torch(scene, encoder, window: int, windows: int, batch: int) -> dict:
    """Export the encoder for ``window`` px chips and embed the first ``windows`` windows of
    ``scene`` with PyTorch and with onnxruntime (same normalised inputs).
    """
    import numpy as np
    import onnxruntime as ort
    import torch

    from skysense.inference.predict import _stack
    from skysense.inference.windows import WindowGrid
    from skysense.models.onnx_export import EncoderGraph, export_encoder_onnx, onnx_feeds
    from skysense.registry.onnx_artifact import model_batch

    model = encoder.model.cpu().eval()
    grid = WindowGrid(scene.height, scene.width, window, window // 2)
    origins = grid.covering(0, scene.height, 0, scene.width)[:windows]
    batches = []
    for i in range(0, len(origins), batch):
        arrays = _stack([scene.read_window(r, c, window) for r, c in origins[i : i + batch]])
        full = {n: arrays.get(n) for n in ("s2", "s2_doy", "s1", "s1_doy", "hr", "lat", "lon")}
        b = model_batch({k: v for k, v in full.items() if v is not None}, encoder.config,
                        model.spec.n_regions)  # fmt: skip
        if "dem" not in b and model.spec.dem:  # the graph takes every modality: DEM absent
            n = b["s2"].shape[0]
            b["dem"] = torch.zeros(n, 1, window, window)
            b["has_dem"] = torch.zeros(n, dtype=torch.bool)
        batches.append(b)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = export_encoder_onnx(model, batches[0], Path(tmp) / "encoder.onnx")
        export_s = time.perf_counter() - start
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = EncoderGraph(model).input_names
        feeds = [onnx_feeds(b, names) for b in batches]
        session.run(["embedding"], feeds[0])  # warm-up (allocations), not timed
        with torch.inference_mode():
            model.embed(batches[0])
            start = time.perf_counter()
            torch_out = [model.embed(b).numpy() for b in batches]
            torch_s = time.perf_counter() - start
        start = time.perf_counter()
        onnx_out = [session.run(["embedding"], f)[0] for f in feeds]
        onnx_s = time.perf_counter() - start
    diff = max(float(np.abs(a - b).max()) for a, b in zip(torch_out, onnx_out))
    return {
        "windows": len(origins),
        "batch": batch,
        "export_s": round(export_s, 1),
        "torch_s": round(torch_s, 3),
        "onnxruntime_s": round(onnx_s, 3),
        "onnxruntime_speedup": round(torch_s / onnx_s, 2),
        "max_abs_diff": diff,
    }


def main() -> None:
    """Run the 1x and 4x scenes and print/write the summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=256, help="1x scene side, 10 m pixels")
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--overlap", type=int, default=8)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--s2-dates", type=int, default=8)
    ap.add_argument("--s1-dates", type=int, default=6)
    ap.add_argument("--hr", action="store_true", help="add an HR raster (32x finer)")
    ap.add_argument("--onnx", action="store_true", help="onnxruntime vs PyTorch (4x scene)")
    ap.add_argument("--onnx-windows", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--one", nargs=2, metavar=("INPUTS_JSON", "OUTPUT"), help=argparse.SUPPRESS)
    ap.add_argument("--one-onnx", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        onnx = json.loads(args.one_onnx) if args.one_onnx else {}
        inputs = json.loads(Path(args.one[0]).read_text())
        print(
            json.dumps(
                run_one(inputs, Path(args.one[1]), args.window, args.overlap, args.block, onnx)
            )
        )
        return
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        uri = register_tiny(tmp_path)
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
        results = {}
        for label, side in (("1x", args.side), ("4x", 2 * args.side)):
            s2 = make_scene(tmp_path / f"s2_{label}.tif", side, "s2")
            s1 = make_scene(tmp_path / f"s1_{label}.tif", side, "s1")
            inputs = {
                "s2": series(s2, args.s2_dates),
                "s1": series(s1, args.s1_dates),
                "hr": str(make_hr(tmp_path / f"hr_{label}.tif", s2)) if args.hr else None,
            }
            inputs_file = tmp_path / f"inputs_{label}.json"
            inputs_file.write_text(json.dumps(inputs))
            onnx = (
                {"windows": args.onnx_windows, "batch": args.batch}
                if args.onnx and label == "4x"
                else {}
            )
            start = time.perf_counter()
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    str(inputs_file),
                    str(tmp_path / f"pred_{label}.tif"),
                    "--window",
                    str(args.window),
                    "--overlap",
                    str(args.overlap),
                    "--block",
                    str(args.block),
                    "--one-onnx",
                    json.dumps(onnx) if onnx else "",
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode:
                raise SystemExit(proc.stderr[-3000:])
            results[label] = json.loads(proc.stdout.strip().splitlines()[-1])
            results[label]["wall_s_with_startup"] = round(time.perf_counter() - start, 1)
    results["peak_rss_ratio_4x_over_1x"] = round(
        results["4x"]["peak_rss_mb"] / results["1x"]["peak_rss_mb"], 3
    )
    results["settings"] = {
        "preset": "skysense-tiny",
        "side_1x": args.side,
        "window": args.window,
        "overlap": args.overlap,
        "block": args.block,
        "s2_dates": args.s2_dates,
        "s1_dates": args.s1_dates,
        "hr": args.hr,
        "cpu_threads": os.cpu_count(),
    }
    (args.out / "predict_throughput.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
