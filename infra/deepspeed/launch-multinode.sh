#!/usr/bin/env bash
# Multi-node DeepSpeed pre-training over a hostfile (bare-metal or VMs with a shared file system).
#
# Requirements: the same checkout, venv and data path on every host (e.g. NFS), password-less ssh
# from this host to every host in the hostfile, and pdsh (DeepSpeed's default multi-node runner).
# Run on the first host of the hostfile:
#
#   cp infra/deepspeed/hostfile.example infra/deepspeed/hostfile   # list your nodes and slots
#   infra/deepspeed/launch-multinode.sh                             # uses ./params.yaml
#   MASTER_ADDR=10.0.0.5 PARAMS=params.yaml infra/deepspeed/launch-multinode.sh
#
# Every rank runs `python -m skysense.cli.train_worker`, which trains as one rank of the job
# (skysense/training/launch.py: multinode_command). Export and train_log.csv are written by rank 0
# under $OUT; register the result afterwards with `skysense evaluate` and `skysense register`.
set -euo pipefail
cd "$(dirname "$0")/../.."

HOSTFILE="${HOSTFILE:-infra/deepspeed/hostfile}"
PARAMS="${PARAMS:-params.yaml}"
CHIPS="${CHIPS:-data/chips}"
OUT="${OUT:-checkpoints}"
MASTER_PORT="${MASTER_PORT:-29500}"
VENV="${VENV:-.venv}"

if [[ ! -f "$HOSTFILE" ]]; then
  echo "error: hostfile $HOSTFILE not found; copy infra/deepspeed/hostfile.example and list your nodes" >&2
  exit 2
fi
MASTER_ADDR="${MASTER_ADDR:-$(grep -v '^\s*#' "$HOSTFILE" | awk 'NF {print $1; exit}')}"

# Variables DeepSpeed forwards to every rank (an env file named by DS_ENV_FILE; git-ignored).
export DS_ENV_FILE="$(pwd)/infra/deepspeed/.deepspeed_env"
cat > "$DS_ENV_FILE" <<ENV
DVC_NO_ANALYTICS=1
MLFLOW_DISABLE_TELEMETRY=true
MLFLOW_TRACKING_URI=${MLFLOW_TRACKING_URI:-sqlite:///$(pwd)/mlflow.db}
NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME:-^lo,docker0}
ENV

exec "$VENV/bin/deepspeed" --hostfile "$HOSTFILE" \
  --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" \
  --module skysense.cli.train_worker \
  --params "$(realpath "$PARAMS")" --chips "$(realpath "$CHIPS")" --out "$(realpath -m "$OUT")"
