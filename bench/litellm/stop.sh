#!/usr/bin/env bash
# Stops the LiteLLM proxy started by start.sh (its whole process group).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
pidfile="$root/.tools/litellm-run/pid"
[[ -f "$pidfile" ]] || exit 0
pid="$(cat "$pidfile")"
kill -TERM -- "-$pid" 2>/dev/null || true
for _ in $(seq 50); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -KILL -- "-$pid" 2>/dev/null || true
rm -f "$pidfile"
