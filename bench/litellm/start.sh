#!/usr/bin/env bash
# Starts the LiteLLM proxy in the background on 127.0.0.1, pointed at an
# OpenAI-compatible upstream (the mock), and prints its PID once it answers.
#
#   bash bench/litellm/start.sh PORT UPSTREAM_BASE_URL [WORKERS]
#
# Model `gpt-4o-mini`, master key `sk-bench-master`, no database, no callbacks,
# the bundled model cost map (no network), logs at ERROR. Run setup.sh first;
# stop.sh stops it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.tools/litellm-venv"
port="$1" upstream="$2" workers="${3:-2}"
state="$root/.tools/litellm-run"
mkdir -p "$state"
cat >"$state/config.yaml" <<YAML
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: $upstream
      api_key: sk-bench
general_settings:
  master_key: sk-bench-master
litellm_settings:
  telemetry: false
  drop_params: true
YAML
export LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR LITELLM_TELEMETRY=False \
  DISABLE_SCHEMA_UPDATE=True NO_DOCS=True
setsid "$venv/bin/litellm" --config "$state/config.yaml" --host 127.0.0.1 --port "$port" \
  --num_workers "$workers" >"$state/litellm.log" 2>&1 &
pid=$!
echo "$pid" >"$state/pid"
for _ in $(seq 600); do
  if curl -sf -o /dev/null -H "Authorization: Bearer sk-bench-master" \
    "http://127.0.0.1:$port/health/liveliness"; then
    echo "$pid"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "litellm exited; its log:" >&2
    tail -30 "$state/litellm.log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "litellm did not answer on port $port within 60 s; its log: $state/litellm.log" >&2
exit 1
