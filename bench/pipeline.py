"""Benchmark: wall time of ``make run``'s pipeline by stage, and the orchestration overhead.

Runs ``skysense pipeline run --json`` in a fresh clone-like project (the pipeline files in a new
git + DVC repo under a temp folder: fresh Prefect home, MLflow store and DVC cache), twice: the
first run builds everything, the second finds everything up to date. Then a plain ``dvc repro``
in that project is timed three times (target: it does nothing, says so, in under 3 s).

Overhead = everything but chipping, training and evaluation compute, as a share of the first
run's total wall time (target: at most 25 %). Also reported: the orchestration-only share
(the total minus every stage's own command time: interpreter and Prefect start-up, task and
state bookkeeping, DVC status/commit, artifacts, registry calls).

    python bench/pipeline.py            # make run's defaults (params.yaml)
    python bench/pipeline.py --quick    # the small settings of tests/flows (a few minutes)

Writes ``bench/out/pipeline.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ("params.yaml", "dvc.yaml", ".dvcignore", ".gitignore", ".dvc/config", ".dvc/.gitignore")
QUICK = [
    "data.sample.locations=2",
    "data.sample.heldout_locations=1",
    "data.sample.size_px=32",
    "data.sample.s2_dates=4",
    "data.sample.s1_dates=3",
    "model.overrides={hr_depths: [1, 1, 1, 1], vit_depth: 1, fusion_depth: 1}",
    "train.steps=2",
    "train.nproc=1",
    "train.micro_batch=2",
    "train.warmup_steps=1",
    "train.checkpoint_every=2",
    "eval.linear_epochs=5",
    "eval.seg_epochs=3",
]
COMPUTE_STAGES = ("chip", "train", "evaluate")


def make_project(dest: Path) -> Path:
    """The pipeline files of this repository in a new git + DVC repo with a local remote."""
    dest.mkdir(parents=True)
    for name in FILES:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, dest / name)
    git = ["git", "-c", "user.email=bench@skysense", "-c", "user.name=bench"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    dvc = str(Path(sys.executable).with_name("dvc"))
    subprocess.run(
        [dvc, "remote", "modify", "local", "url", str(dest.parent / "dvc-remote")],
        cwd=dest,
        check=True,
    )
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "bench"], cwd=dest, check=True)
    return dest


def run_pipeline(project: Path, overrides: list[str]) -> tuple[dict, float]:
    """One ``skysense pipeline run --json``; returns (summary, wall seconds of the command)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_HOME", "MLFLOW_TRACKING_URI")}
    argv = [str(Path(sys.executable).with_name("skysense")), "pipeline", "run", "--json"]
    argv += [a for o in overrides for a in ("--set", o)]
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"pipeline failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout), wall


def time_dvc_repro(project: Path, times: int = 3) -> dict:
    """Wall seconds of a plain ``dvc repro`` in an up-to-date project, and what it printed."""
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    walls, said = [], ""
    for _ in range(times):
        start = time.perf_counter()
        proc = subprocess.run(
            [str(Path(bindir) / "dvc"), "repro"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        walls.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"dvc repro failed:\n{proc.stderr[-4000:]}")
        said = (proc.stdout + proc.stderr).strip().splitlines()[-1]
    return {
        "wall_s": [round(w, 2) for w in walls],
        "said": said,
        "did_nothing": "up to date" in said and "Running stage" not in proc.stdout,
    }


def breakdown(summary: dict, wall: float) -> dict:
    """Per-stage seconds, compute and overhead shares of one run."""
    stages = {s["stage"]: round(s["seconds"], 2) for s in summary["stages"]}
    compute = sum(stages.get(s, 0.0) for s in COMPUTE_STAGES)
    all_stages = sum(stages.values())
    return {
        "wall_s": round(wall, 2),
        "flow_s": summary["wall_seconds"],
        "startup_and_teardown_s": round(wall - summary["wall_seconds"], 2),
        "stages_s": stages,
        "register_promote_s": round(summary["wall_seconds"] - all_stages, 2),
        "compute_s": round(compute, 2),
        "overhead_s": round(wall - compute, 2),
        "overhead_share": round((wall - compute) / wall, 4),
        "orchestration_only_s": round(wall - all_stages, 2),
        "orchestration_only_share": round((wall - all_stages) / wall, 4),
    }


def main() -> int:
    """Run the benchmark and print/write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small settings (as tests/flows)")
    parser.add_argument("--keep", action="store_true", help="keep the temp project")
    args = parser.parse_args()
    overrides = QUICK if args.quick else []
    tmp = Path(tempfile.mkdtemp(prefix="skysense-bench-"))
    try:
        project = make_project(tmp / "project")
        first, wall1 = run_pipeline(project, overrides)
        second, wall2 = run_pipeline(project, overrides)
        repro = time_dvc_repro(project)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    report = {
        "settings": "quick" if args.quick else "make run defaults",
        "cores": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "first_run": breakdown(first, wall1),
        "second_run_up_to_date": breakdown(second, wall2),
        "second_dvc_repro": repro,
        "champion": first.get("champion_version"),
        "target_overhead_share": 0.25,
    }
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "pipeline.json").write_text(json.dumps(report, indent=2))
    r = report["first_run"]
    print(f"pipeline ({report['settings']}): {r['wall_s']:.1f} s wall; stages {r['stages_s']}")
    print(
        f"  start-up/teardown {r['startup_and_teardown_s']:.1f} s, register+promote "
        f"{r['register_promote_s']:.1f} s"
    )
    print(
        f"  overhead (all but chip/train/evaluate): {r['overhead_s']:.1f} s = "
        f"{100 * r['overhead_share']:.1f} % "
        f"(target <= 25 %); orchestration only: {100 * r['orchestration_only_share']:.1f} %"
    )
    print(f"  second run (up to date): {report['second_run_up_to_date']['wall_s']:.1f} s")
    print(
        f"  plain `dvc repro` afterwards: {', '.join(f'{w:.2f}' for w in repro['wall_s'])} s "
        f"(target < 3 s), did nothing: {repro['did_nothing']}, said {repro['said']!r}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
