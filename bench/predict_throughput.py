"""Benchmark ``skysense predict``: km² per second and peak memory, scenes of 1x and 4x area.

A tiny SkySense encoder (random init, same cost as a trained one) is registered as a pyfunc in a
temporary SQLite MLflow store and served as ``models:/NAME@champion``. The scene is the real
BigEarthNet Sentinel-2 patch of ``tests/data/real/inference`` mirrored out to the wanted size
(10 bands, uint16 DN, its UTM grid). Each scene runs in its own subprocess, which reports its own
peak RSS (``ru_maxrss``), so the figures do not mix.

Usage: ``python bench/predict_throughput.py [--side 256] [--window 32] [--overlap 8]
[--block 128] [--out bench/out]``; prints a JSON summary and writes ``predict_throughput.json``.
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


def make_scene(path: Path, side: int) -> Path:
    """Mirror-tile the real 10-band stack to ``side x side`` pixels (10 m), same CRS/origin."""
    import numpy as np
    import rasterio

    sys.path.insert(0, str(ROOT / "tests" / "inference"))
    from scene_fixtures import stack_s2

    base = stack_s2(path.with_name("base.tif"), nodata_corner=0)
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


def run_one(scene: Path, output: Path, window: int, overlap: int, block: int) -> dict:
    """Predict one scene in this process; report time, area and peak RSS."""
    from skysense.inference.predict import predict_scene
    from skysense.inference.scene import Scene, parse_dated
    from skysense.registry.model_loading import encoder_embedder

    embed, _ = encoder_embedder(f"models:/{NAME}@champion", "auto")
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with Scene([parse_dated(str(scene))]) as sc:
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
    return {
        **summary.to_dict(),
        "km2_per_s": summary.km2 / summary.seconds,
        "peak_rss_mb": round(peak, 1),
        "rss_after_model_load_mb": round(rss_loaded, 1),
    }


def main() -> None:
    """Run the 1x and 4x scenes and print/write the summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=256, help="1x scene side, 10 m pixels")
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--overlap", type=int, default=8)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--one", nargs=2, metavar=("SCENE", "OUTPUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(
            json.dumps(
                run_one(Path(args.one[0]), Path(args.one[1]), args.window, args.overlap, args.block)
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
            scene = make_scene(tmp_path / f"scene_{label}.tif", side)
            start = time.perf_counter()
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    str(scene),
                    str(tmp_path / f"pred_{label}.tif"),
                    "--window",
                    str(args.window),
                    "--overlap",
                    str(args.overlap),
                    "--block",
                    str(args.block),
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
        "window": args.window,
        "overlap": args.overlap,
        "block": args.block,
        "dates": 1,
        "cpu_threads": os.cpu_count(),
    }
    (args.out / "predict_throughput.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
