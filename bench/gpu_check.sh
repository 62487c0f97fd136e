#!/usr/bin/env bash
# The GPU path, run for real: base and huge presets at the paper's input sizes (S2/S1 64 px,
# HR 2048 px), DeepSpeed ZeRO-2 and ZeRO-3, bf16, activation checkpointing, CUDA/nccl; per run
# steps completed, loss finite, step time, tokens/s, model FLOP utilisation, peak memory per GPU,
# and a checkpoint / resume / export round trip (bench/gpu_check.py). One JSON row per run in
# OUT_DIR and a table in OUT_DIR/summary.md; a run that fails or times out is a row too.
#
#   bench/gpu_check.sh [OUT_DIR]          # on a GPU machine (every visible GPU)
#   bench/gpu_check.sh --cpu [OUT_DIR]    # the same script on CPU: tiny preset, gloo, 2 ranks
#
# Environment: PYTHON (default .venv/bin/python), RUN_TIMEOUT seconds per run (default 170 on
# GPU, 300 on CPU), STEPS (default 3 on GPU, 2 on CPU), PRESETS (default "skysense-base
# skysense-huge"), STAGES (default "2 3").
set -u
cd "$(dirname "$0")/.."
MODE=gpu
if [ "${1:-}" = "--cpu" ]; then MODE=cpu; shift; fi
OUT_DIR=${1:-gpu-check}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT_DIR"
export GPU_CHECK_TMP="${GPU_CHECK_TMP:-$OUT_DIR/tmp}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ "$MODE" = gpu ]; then
  NPROC=$(nvidia-smi -L 2>/dev/null | wc -l)
  if [ "$NPROC" -lt 1 ]; then echo "no GPU visible (nvidia-smi -L); use --cpu" >&2; exit 2; fi
  PRESETS=${PRESETS:-"skysense-base skysense-huge"}
  STAGES=${STAGES:-"2 3"}
  STEPS=${STEPS:-3}
  TIMEOUT=${RUN_TIMEOUT:-170}
  EXTRA=(--precision bf16)
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT_DIR/gpus.csv"
else
  NPROC=2
  PRESETS=${PRESETS:-"skysense-tiny"}
  STAGES=${STAGES:-"2 3"}
  STEPS=${STEPS:-2}
  TIMEOUT=${RUN_TIMEOUT:-300}
  EXTRA=(--cpu --precision fp32)
  export OMP_NUM_THREADS=1
fi
for preset in $PRESETS; do
  for zero in $STAGES; do
    row="$OUT_DIR/${preset}-zero${zero}.json"
    log="$OUT_DIR/${preset}-zero${zero}.log"
    echo "== $preset ZeRO-$zero ($MODE, $NPROC ranks, $STEPS steps, timeout ${TIMEOUT}s)"
    start=$(date +%s)
    timeout --signal=TERM --kill-after=15 "$TIMEOUT" "$PY" -m torch.distributed.run --standalone \
      --nnodes 1 --nproc_per_node "$NPROC" bench/gpu_check.py --preset "$preset" \
      --zero "$zero" --steps "$STEPS" "${EXTRA[@]}" --out "$row" > "$log" 2>&1
    rc=$?
    if [ ! -s "$row" ]; then
      printf '{"preset": "%s", "zero": %s, "failed": true, "rc": %s, "seconds": %s}\n' \
        "$preset" "$zero" "$rc" "$(( $(date +%s) - start ))" > "$row"
      tail -5 "$log"
    fi
    rm -rf "$GPU_CHECK_TMP"
  done
done
"$PY" - "$OUT_DIR" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
rows = [json.loads(p.read_text()) for p in sorted(out.glob("*-zero*.json"))]
head = ("| preset | px S2/HR | ZeRO | prec | ranks | steps | loss finite | step s | tokens/s | MFU "
        "| peak GiB/rank | resume ok | export ok |")
lines = [head, "|" + "---|" * 13]
for r in rows:
    if r.get("failed") or r.get("oom"):
        why = "OOM" if r.get("oom") else f"failed rc={r.get('rc')}"
        lines.append(f"| {r['preset']} | | {r['zero']} | | | {why} | | | | | | | |")
        continue
    rt = r.get("roundtrip", {})
    mfu = r.get("mfu")
    mem = max(v for v in r["peak_memory_gib_per_rank"] if v is not None)
    lines.append(
        f"| {r['preset']} | {r['sentinel_px']}/{r['hr_px']} | {r['zero']} | {r['precision']} "
        f"| {r['world_size']} | {r['steps_completed']} | {r['loss_finite']} | {r['step_s']:.3f} "
        f"| {r['tokens_per_s']:,.0f} | {'n/a' if mfu is None else f'{mfu:.1%}'} | {mem:.2f} "
        f"| {rt.get('resume_matches')} | {rt.get('export_embedding_finite')} |"
    )
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
