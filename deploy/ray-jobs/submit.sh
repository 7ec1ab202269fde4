#!/usr/bin/env bash
# Submit one posecluster command to a running Ray cluster as a Ray job.
#
#   RAY_ADDRESS=http://HEAD:8265 deploy/ray-jobs/submit.sh COMMAND [ARGS...]
#
# COMMAND is any posecluster command: infer, train, sweep, evaluate, ... (recipes in deploy/README.md).
# The cluster's image already holds posecluster and its dependencies; what travels with the job:
#   POSECLUSTER_CONFIG_FILE=path.yaml  a posecluster config: its folder is uploaded as the job's working
#                                      dir and the command reads it (POSECLUSTER_CONFIG)
#   SUBMISSION_ID=name                 a stable id (resubmitting the same id is refused by Ray)
#   NO_WAIT=1                          return at once; follow with `ray job logs --follow ID`
# Ray 2.60 authenticates with a token: export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=... (never in the job).
set -euo pipefail
: "${RAY_ADDRESS:?set RAY_ADDRESS to the dashboard address of the head, e.g. http://127.0.0.1:8265}"
if [ $# -lt 1 ]; then
    sed -n "2,13p" "$0" >&2
    exit 2
fi

args=(job submit --address "$RAY_ADDRESS")
env_json='{}'
if [ -n "${POSECLUSTER_CONFIG_FILE:-}" ]; then
    [ -f "$POSECLUSTER_CONFIG_FILE" ] || { echo "no such config file: $POSECLUSTER_CONFIG_FILE" >&2; exit 2; }
    args+=(--working-dir "$(dirname "$POSECLUSTER_CONFIG_FILE")")
    config_name=$(basename "$POSECLUSTER_CONFIG_FILE")
    env_json=$(printf '{"POSECLUSTER_CONFIG": "%s"}' "$config_name")
fi
args+=(--runtime-env-json "$(printf '{"env_vars": %s}' "$env_json")")
[ -n "${SUBMISSION_ID:-}" ] && args+=(--submission-id "$SUBMISSION_ID")
[ -n "${NO_WAIT:-}" ] && args+=(--no-wait)
exec ray "${args[@]}" -- posecluster "$@"
