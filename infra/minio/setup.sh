#!/bin/sh
# One-shot MinIO setup (the minio-buckets service; safe to run again): the two buckets, a policy
# per bucket, and one user per client with only that policy. The root login stays here.
set -eu
mc alias set store http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing store/mlflow-artifacts
mc mb --ignore-existing store/skysense-dvc
mc admin policy create store skysense-mlflow-artifacts /setup/policies/mlflow-artifacts.json
mc admin policy create store skysense-dvc /setup/policies/dvc.json
mc admin user add store "$MLFLOW_S3_ACCESS_KEY" "$MLFLOW_S3_SECRET_KEY"
mc admin user add store "$DVC_S3_ACCESS_KEY" "$DVC_S3_SECRET_KEY"
attach() {
  # "already in effect" on a second run is fine; any other error is not
  if ! out=$(mc admin policy attach store "$1" --user "$2" 2>&1); then
    case "$out" in
      *"already"*) ;;
      *) echo "$out" >&2; exit 1 ;;
    esac
  fi
}
attach skysense-mlflow-artifacts "$MLFLOW_S3_ACCESS_KEY"
attach skysense-dvc "$DVC_S3_ACCESS_KEY"
