#!/usr/bin/env bash
# Runs the benchmark scenarios of BENCHMARKS.md on this machine and writes each
# result as JSON under bench/results/ (plus the tables on stdout).
#
#   bash bench/run.sh [passthrough|check|onethread|rate1000|tools|capacity|idle|cancel|soak|redis|failover|cost|guardrails|all] [--no-peer]
#
# `check` is the request-path regression check every change on the request path
# re-runs: 1 in flight and 1,000 req/s against both mocks, agentd and direct only.
# AGENTD_BENCH_BIN=DIR uses the binaries in DIR instead of building them (to
# measure an older build the same way); AGENTD_BENCH_TAG=NAME suffixes the
# result files of `check` so two builds' results sit side by side.
#
# Everything runs on 127.0.0.1: the mock upstream (agentd-mock-llm), agentd
# (release build, embedded defaults plus OPENAI_BASE_URL at the mock), the LiteLLM
# proxy (bench/litellm, for `passthrough` unless --no-peer) and agentd-bench.
# Nothing here asserts on numbers; read them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scenario="${1:-all}"
peer=1
[[ "${2:-}" == "--no-peer" || "$scenario" == check ]] && peer=0
if [[ $peer == 1 && ! -f bench/litellm/setup.sh ]]; then
  echo "bench/litellm/ (the LiteLLM peer) is not in this checkout yet: use --no-peer" >&2
  exit 64
fi
results="$root/bench/results"
work="$(mktemp -d)"
mkdir -p "$results"
bin="${AGENTD_BENCH_BIN:-$root/target/release}"
tag="${AGENTD_BENCH_TAG:+-$AGENTD_BENCH_TAG}"

if [[ -z "${AGENTD_BENCH_BIN:-}" ]]; then
  cargo build --release --locked -p agentd -p agentd-mock-llm \
    --bin agentd --bin agentd-mock-llm --bin agentd-bench >&2
fi
[[ $peer == 1 ]] && bash bench/litellm/setup.sh >&2

MOCK_PORT=18601 AGENTD_PORT=18611 METRICS_PORT=18612 PEER_PORT=18621
pids=()
# Processes that outlive stop_all (a scenario's Redis, its vector store).
long_pids=()
cleanup() {
  for pid in "${pids[@]}" "${long_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ $peer == 1 ]] && bash bench/litellm/stop.sh >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}

start_mock() { # extra mock flags...
  "$bin/agentd-mock-llm" --addr "127.0.0.1:$MOCK_PORT" "$@" >"$work/mock.log" 2>&1 &
  MOCK_PID=$!
  pids+=("$MOCK_PID")
  wait_port "$MOCK_PORT"
}

start_agentd() { # extra env assignments...
  rm -rf "$work/data"
  env OPENAI_BASE_URL="http://127.0.0.1:$MOCK_PORT/v1" OPENAI_API_KEY=sk-bench \
    AGENTD__SERVER__GRPC_ADDR="127.0.0.1:$AGENTD_PORT" \
    AGENTD__SERVER__METRICS_ADDR="127.0.0.1:$METRICS_PORT" \
    AGENTD__STORAGE__DATA_DIR="$work/data" AGENTD__LOG__LEVEL=warn AGENTD__SERVER__DRAIN_DELAY=0s "$@" \
    "$bin/agentd" serve >"$work/agentd.log" 2>&1 &
  AGENTD_PID=$!
  pids+=("$AGENTD_PID")
  wait_port "$AGENTD_PORT"
  sleep 1
  echo "agentd idle RSS after start: $(rss_kb "$AGENTD_PID") kB" >&2
}

start_peer() {
  PEER_PID="$(bash bench/litellm/start.sh "$PEER_PORT" "http://127.0.0.1:$MOCK_PORT/v1" 2)"
  echo "litellm idle RSS (all its processes): $(ps -o rss= --ppid "$PEER_PID" | awk '{s+=$1} END {print s}') kB + $(rss_kb "$PEER_PID") kB" >&2
}

stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ $peer == 1 ]] && bash bench/litellm/stop.sh >/dev/null 2>&1 || true
  # Only these: a scenario's long-lived processes (long_pids) keep running.
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}

load() { # name, agentd-bench load flags...
  local name="$1"
  shift
  local watch=(--watch "agentd=$AGENTD_PID")
  [[ -n "${PEER_PID:-}" ]] && watch+=(--watch "litellm=$PEER_PID")
  echo "== $name: $*" >&2
  "$bin/agentd-bench" load --agentd "http://127.0.0.1:$AGENTD_PORT" \
    --upstream "http://127.0.0.1:$MOCK_PORT/v1" \
    --peer "http://127.0.0.1:$PEER_PORT/v1" --peer-key sk-bench-master \
    "${watch[@]}" "$@" --json >"$results/$name.json"
  python3 bench/summarize.py "$results/$name.json" >&2
}

# Highest offered rate (of the steps given) with < 0.1% errors and at least 99%
# of the offered rate completed, 10 s per step.
max_rate() { # name, target, rates...
  local name="$1" target="$2"
  shift 2
  for rate in "$@"; do
    load "$name-$rate" --targets "$target" --rate "$rate" --duration 10s --rounds 1
    python3 bench/summarize.py --sustained "$rate" "$results/$name-$rate.json" || break
  done
}

passthrough() {
  for delay in 0 20; do
    PEER_PID=""
    start_mock --tokens 32 --first-token-delay-ms "$delay"
    start_agentd
    local targets=agentd,direct
    if [[ $peer == 1 ]]; then start_peer; targets=agentd,direct,peer; fi
    load "passthrough-ttft$delay-1inflight" --targets "$targets" --concurrency 1 --duration 20s --rounds 4
    load "passthrough-ttft$delay-200rps" --targets "$targets" --rate 200 --duration 20s --rounds 2
    load "passthrough-ttft$delay-1000rps" --targets agentd,direct --rate 1000 --duration 20s --rounds 2
    max_rate "passthrough-ttft$delay-max-agentd" agentd 1000 1200 1400 1600 1800 2000 2500 3000
    if [[ $peer == 1 ]]; then max_rate "passthrough-ttft$delay-max-litellm" peer 10 20 40 60 80 120 160 200; fi
    echo "agentd idle RSS after the runs: $(rss_kb "$AGENTD_PID") kB" >&2
    stop_all
  done
}

# The regression check: per mock delay, a fresh agentd and mock, one request in
# flight, then 1,000 req/s (twice, fresh each time; quote the median with
# rate1000 when a figure is close to a limit).
check() {
  for delay in 0 20; do
    PEER_PID=""
    start_mock --tokens 32 --first-token-delay-ms "$delay"
    start_agentd
    load "check-ttft$delay-1inflight$tag" --targets agentd,direct --concurrency 1 --duration 20s --rounds 4
    stop_all
    for run in 1 2; do
      start_mock --tokens 32 --first-token-delay-ms "$delay"
      start_agentd
      load "check-ttft$delay-1000rps-run$run$tag" --targets agentd,direct --rate 1000 --duration 20s --rounds 2
      stop_all
    done
  done
}

# 1,000 req/s again, five times per mock on a fresh agentd and mock each time:
# a p99 of a difference moves from run to run on two shared cores; the median
# of the runs is the number to quote. Session-write times come from /metrics.
rate1000() {
  for delay in 0 20; do
    local files=() name
    for run in 1 2 3 4 5; do
      PEER_PID=""
      name="rate1000-ttft$delay-run$run"
      start_mock --tokens 32 --first-token-delay-ms "$delay"
      start_agentd
      curl -s "127.0.0.1:$METRICS_PORT/metrics" >"$work/metrics-before"
      load "$name" --targets agentd,direct --rate 1000 --duration 20s --rounds 2
      curl -s "127.0.0.1:$METRICS_PORT/metrics" >"$work/metrics-after"
      python3 bench/summarize.py --stages "$work/metrics-before" "$work/metrics-after" >&2
      stop_all
      files+=("$results/$name.json")
    done
    echo "== 1,000 req/s, mock delay $delay ms, $run runs" >&2
    python3 bench/summarize.py --repeats "${files[@]}" >&2
  done
}

# Failing over once: route "failover" first tries model "broken", on a second
# mock that answers 503 at once, then model "healthy" on the usual mock; model
# "healthy" alone is the call that succeeds at once. One agentd and both mocks,
# the two alternated four times (one request in flight, 5 s each, each against
# the upstream directly): the added latency of one failover is the difference
# of the two medians. No retry (max_attempts 1) and no breaker (min_calls out
# of reach), so every failover call pays the 503.
failover() {
  PEER_PID=""
  local broken_port=18602 files_once=() files_straight=()
  start_mock --tokens 32
  "$bin/agentd-mock-llm" --addr "127.0.0.1:$broken_port" --fault http503 >"$work/broken.log" 2>&1 &
  pids+=("$!")
  wait_port "$broken_port"
  cat >"$work/failover.toml" <<EOF
[llm]
default_model = "healthy"
routes = { failover = { targets = ["broken", "healthy"] } }
[llm.providers.mock]
base_url = "http://127.0.0.1:$MOCK_PORT/v1"
keyless = true
[llm.providers.down]
base_url = "http://127.0.0.1:$broken_port/v1"
keyless = true
[llm.models.healthy]
provider = "mock"
upstream_model = "gpt-4o-mini"
context_window = 128000
max_output_tokens = 16384
[llm.models.broken]
provider = "down"
upstream_model = "gpt-4o-mini"
context_window = 128000
max_output_tokens = 16384
[llm.retry]
max_attempts = 1
[llm.breaker]
min_calls = 1000000000
EOF
  start_agentd AGENTD_CONFIG="$work/failover.toml"
  for round in 1 2 3 4; do
    load "failover-straight-r$round$tag" --targets agentd,direct --agentd-model healthy --concurrency 1 --duration 5s --rounds 1
    load "failover-once-r$round$tag" --targets agentd,direct --agentd-model failover --concurrency 1 --duration 5s --rounds 1
    files_straight+=("$results/failover-straight-r$round$tag.json")
    files_once+=("$results/failover-once-r$round$tag.json")
  done
  echo "== succeeding at once" >&2
  python3 bench/summarize.py --repeats "${files_straight[@]}" >&2
  echo "== failing over once (the first target answers 503)" >&2
  python3 bench/summarize.py --repeats "${files_once[@]}" >&2
  stop_all
}

tools() {
  PEER_PID=""
  start_mock --tokens 32 --tool-call search_knowledge --tool-arguments '{"query": "kalo miren tos"}'
  start_agentd AGENTD__RETRIEVAL__DEFAULT_COLLECTION=bench-10000
  "$bin/agentd-bench" search --agentd "http://127.0.0.1:$AGENTD_PORT" --queries 10 >&2
  curl -s "127.0.0.1:$METRICS_PORT/metrics" >"$work/metrics-before"
  load tools-search-knowledge --targets agentd,direct --concurrency 1 --duration 20s --rounds 4
  curl -s "127.0.0.1:$METRICS_PORT/metrics" >"$results/tools-search-knowledge.metrics"
  python3 bench/summarize.py --stages "$work/metrics-before" "$results/tools-search-knowledge.metrics" >&2
  stop_all
}

capacity() {
  PEER_PID=""
  start_mock --tokens 100 --token-delay-ms 50
  # 2,000 open calls need a limit above the default 1,024; 20 connections keep
  # each under HTTP/2's usual 100-200 concurrent streams.
  start_agentd AGENTD__SERVER__MAX_CONCURRENT_CALLS=4096
  load capacity-2000-streams --targets agentd --concurrency 2000 --connections 20 --duration 30s --rounds 1 --warmup 0s --timeout 60s
  sleep 2
  echo "agentd RSS after the streams ended: $(rss_kb "$AGENTD_PID") kB" >&2
  stop_all
}

# Streams that stay open with nothing to send: the upstream holds its first
# token for a minute, the client gives up after 15 s. RSS is read 10 s in.
idle_streams() { # name, extra env assignments for agentd...
  local name="$1"
  shift
  start_mock --tokens 1 --first-token-delay-ms 60000
  start_agentd AGENTD__SERVER__MAX_CONCURRENT_CALLS=4096 "$@"
  local before open in_flight
  before="$(rss_kb "$AGENTD_PID")"
  load "$name" --targets agentd --concurrency 2000 --connections 20 --duration 1s --rounds 1 --warmup 0s --timeout 15s &
  local loader=$!
  sleep 10
  open="$(rss_kb "$AGENTD_PID")"
  in_flight="$(curl -s "127.0.0.1:$METRICS_PORT/metrics" | awk '/^grpc_server_in_flight\{grpc_service="agentd.v1.AgentService"/ {print $2}')"
  wait "$loader" || true
  echo "$name: $in_flight streams open; agentd RSS $before kB before, $open kB with them open: $(((open - before) * 1024 / ${in_flight%.*})) bytes per idle stream" | tee "$results/$name.txt" >&2
  stop_all
}

idle() {
  PEER_PID=""
  # The upstream over HTTP/2 (prior knowledge): what agentd does against OpenAI,
  # where TLS negotiates HTTP/2.
  cat >"$work/h2.toml" <<TOML
[llm]
default_model = "gpt-4o-mini"
[llm.providers.mock]
base_url = "http://127.0.0.1:$MOCK_PORT/v1"
keyless = true
http_version = "http2"
[llm.models.gpt-4o-mini]
provider = "mock"
context_window = 128000
max_output_tokens = 16384
TOML
  idle_streams idle-2000-streams-http1
  idle_streams idle-2000-streams-http2 AGENTD_CONFIG="$work/h2.toml" OPENAI_BASE_URL= OPENAI_API_KEY=
  idle_streams idle-2000-streams-http2-arena2 AGENTD_CONFIG="$work/h2.toml" OPENAI_BASE_URL= OPENAI_API_KEY= MALLOC_ARENA_MAX=2
}

cancel() {
  PEER_PID=""
  # How soon a cancel reaches the upstream, one stream at a time, through agentd
  # and direct: a mock that keeps writing (1 ms apart) notices a closed
  # connection at its next write.
  start_mock --tokens 100000 --token-delay-ms 1
  start_agentd
  "$bin/agentd-bench" cancel --agentd "http://127.0.0.1:$AGENTD_PORT" \
    --upstream "http://127.0.0.1:$MOCK_PORT/v1" --requests 200 --after 4 --json \
    | tee "$results/cancel-latency.json" >&2
  stop_all
  start_mock --tokens 32 --token-delay-ms 10
  start_agentd
  local idle
  idle="$(rss_kb "$AGENTD_PID")"
  load cancel-1000 --targets agentd --concurrency 100 --requests 1000 --cancel-after 16 --duration 120s --rounds 1 --warmup 0s
  sleep 1
  curl -s "127.0.0.1:$MOCK_PORT/mock/stats" | tee "$results/cancel-1000.mock-stats.json" >&2
  echo >&2
  curl -s "127.0.0.1:$METRICS_PORT/metrics" | grep '^grpc_server_in_flight{grpc_service="agentd.v1.AgentService"' >&2 || true
  echo "agentd RSS idle before: $idle kB, after: $(rss_kb "$AGENTD_PID") kB" >&2
  stop_all
}

soak() {
  PEER_PID=""
  start_mock --tokens 32
  start_agentd
  # One minute of the same load first (unmeasured) fills the caches and pools
  # that reach their size once; the 10 measured minutes then show any growth.
  load soak-10min --targets agentd --rate 200 --duration 600s --rounds 1 --warmup 60s
  stop_all
}

# A Redis on a unix socket (appendonly yes, appendfsync always, as the README
# advises) and a third agentd (from DIR) whose embedded Qdrant serves as the
# external vector store of the Redis-backed processes; sets redis_dir and
# on_redis (the environment that puts an agentd on them).
start_shared() { # DIR
  redis_dir="$work/redis"
  mkdir -p "$redis_dir"
  redis-server --port 0 --unixsocket "$redis_dir/redis.sock" --dir "$redis_dir" \
    --appendonly yes --appendfsync always --save "" --daemonize no >"$work/redis.log" 2>&1 &
  long_pids+=("$!")
  for _ in $(seq 200); do [[ -S "$redis_dir/redis.sock" ]] && break; sleep 0.05; done
  env AGENTD__SERVER__GRPC_ADDR=127.0.0.1:18641 AGENTD__SERVER__METRICS_ADDR=127.0.0.1:18642 \
    AGENTD__STORAGE__DATA_DIR="$work/vectors" AGENTD__RETRIEVAL__EMBEDDED_ADDR=127.0.0.1:18643 \
    AGENTD__LOG__LEVEL=warn AGENTD__SERVER__DRAIN_DELAY=0s "$1/agentd" serve >"$work/vectors.log" 2>&1 &
  long_pids+=("$!")
  wait_port 18643
  on_redis=(AGENTD__STATE__BACKEND=redis "AGENTD__STATE__REDIS_URL=redis+unix://$redis_dir/redis.sock"
    AGENTD__RETRIEVAL__QDRANT_URL=http://127.0.0.1:18643)
}

# Sessions on Redis against the embedded store, same run: added latency at one
# request in flight and at 1,000 req/s, then the highest sustained rate of one
# process on Redis against two sharing it. Redis runs as the README advises
# (appendonly yes, appendfsync always) on a unix socket; the Redis-backed
# processes use a third agentd's embedded Qdrant as their external vector store.
redis_bench() {
  start_shared "$bin"
  for backend in embedded redis; do
    local extra=()
    [[ $backend == redis ]] && extra=("${on_redis[@]}")
    PEER_PID=""
    start_mock --tokens 32
    start_agentd "${extra[@]}"
    load "redis-$backend-1inflight" --targets agentd,direct --concurrency 1 --duration 20s --rounds 4
    load "redis-$backend-1000rps" --targets agentd,direct --rate 1000 --duration 20s --rounds 2
    stop_all
  done
  # One process on Redis, then two sharing it: the same client (two connections,
  # spread over the processes given), the same rate steps.
  start_mock --tokens 32
  start_agentd "${on_redis[@]}"
  local one="http://127.0.0.1:$AGENTD_PORT"
  redis_sustained redis-max-one "$one"
  env OPENAI_BASE_URL="http://127.0.0.1:$MOCK_PORT/v1" OPENAI_API_KEY=sk-bench \
    AGENTD__SERVER__GRPC_ADDR=127.0.0.1:18613 AGENTD__SERVER__METRICS_ADDR=127.0.0.1:18614 \
    AGENTD__STORAGE__DATA_DIR="$work/data2" AGENTD__LOG__LEVEL=warn AGENTD__SERVER__DRAIN_DELAY=0s \
    "${on_redis[@]}" \
    "$bin/agentd" serve >"$work/agentd2.log" 2>&1 &
  pids+=("$!")
  wait_port 18613
  redis_sustained redis-max-two "$one,http://127.0.0.1:18613"
  stop_all
  for pid in "${long_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  long_pids=()
}

# Highest sustained rate (< 0.1% errors, >= 99% of the offered rate), 10 s per
# step, through the agentd processes listed (comma-separated).
redis_sustained() { # name, agentd URLs
  local name="$1" agentds="$2"
  for rate in 1000 1200 1400 1600 1800 2000 2500 3000 3500 4000; do
    echo "== $name-$rate" >&2
    "$bin/agentd-bench" load --agentd "$agentds" --targets agentd --connections 2 \
      --upstream "http://127.0.0.1:$MOCK_PORT/v1" --rate "$rate" --duration 10s --rounds 1 \
      --json >"$results/$name-$rate.json"
    python3 bench/summarize.py "$results/$name-$rate.json" >&2
    python3 bench/summarize.py --sustained "$rate" "$results/$name-$rate.json" || break
  done
}

# One request in flight with a single runtime thread (server.worker_threads = 1).
onethread() {
  for delay in 0 20; do
    PEER_PID=""
    start_mock --tokens 32 --first-token-delay-ms "$delay"
    start_agentd AGENTD__SERVER__WORKER_THREADS=1
    load "passthrough-ttft$delay-1inflight-1thread" --targets agentd,direct --concurrency 1 --duration 20s --rounds 4
    max_rate "passthrough-ttft$delay-max-agentd-1thread" agentd 1000 1200 1400 1600 1800 2000 2500
    stop_all
  done
}

# Cost control's added latency (rate limits, the budget reservation and its
# settlement on every model call): the build before it (AGENTD_BENCH_BASE=DIR,
# its binaries) against this one, with no limit and with a budget, a request
# rate and a token rate on the tenant; each on a fresh agentd and mock,
# alternated three times: embedded, then on Redis (a unix socket, as in
# `redis`) fsyncing every write (`appendfsync always`, as `redis` runs it),
# then fsyncing once a second (Redis's default with the AOF on). One in
# flight, then 1,000 req/s. Compare the medians of the runs.
cost_bench() {
  local base="${AGENTD_BENCH_BASE:?set AGENTD_BENCH_BASE to the binaries of the build before cost control}"
  start_shared "$base"
  local limits=(AGENTD__COST__TENANTS__DEFAULT__BUDGET_USD_DAY=1000000
    AGENTD__COST__TENANTS__DEFAULT__RATE_REQUESTS=100000
    AGENTD__COST__TENANTS__DEFAULT__RATE_TOKENS=1000000000)
  local this="$bin"
  for backend in embedded redis redis-everysec; do
    [[ $backend == redis-everysec ]] && redis-cli -s "$redis_dir/redis.sock" config set appendfsync everysec >/dev/null
    for run in 1 2 3; do
      for variant in before none limits; do
        local extra=()
        [[ $backend != embedded ]] && extra=("${on_redis[@]}")
        [[ $variant == limits ]] && extra+=("${limits[@]}")
        bin="$this"
        [[ $variant == before ]] && bin="$base"
        [[ $backend != embedded ]] && redis-cli -s "$redis_dir/redis.sock" flushall >/dev/null
        PEER_PID=""
        start_mock --tokens 32
        start_agentd "${extra[@]}"
        load "cost-$backend-$variant-1inflight-run$run" --targets agentd,direct --concurrency 1 --duration 10s --rounds 2
        load "cost-$backend-$variant-1000rps-run$run" --targets agentd,direct --rate 1000 --duration 10s --rounds 2
        stop_all
      done
    done
  done
  bin="$this"
  for pid in "${long_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  long_pids=()
  python3 bench/summarize.py --cost "$results"/cost-*-run*.json >&2
}

# The guardrails' added latency on a 2 KB message holding an email, a phone
# number and an IBAN: the build before them (AGENTD_BENCH_BASE=DIR, its
# binaries) against this one with its defaults (PII masked and restored,
# injection scored, tool results framed), with every streaming guardrail on
# (also a deny list, answer PII redaction, tenant terms, injection blocking),
# and buffered (also an output webhook: the mock's /mock/moderate, which flags
# nothing). Each on a fresh agentd and mock, alternated three times; one in
# flight, then 1,000 req/s. The client is this build's agentd-bench for every
# variant, so the message is the same. Then the buffered turn's time to first
# token against a streamed one with a mock that spaces its 32 chunks 5 ms
# apart (160 ms of generation), one in flight.
guardrails_bench() {
  local base="${AGENTD_BENCH_BASE:?set AGENTD_BENCH_BASE to the binaries of the build before guardrails}"
  local this="$bin" message="$work/message-2k.txt"
  python3 - "$message" <<'PY'
import sys
text = ("Hello team, I am writing about order 2024-118-55731 which has not arrived yet. "
        "Please reach me at ana.lima@example.com or +44 20 7946 0958; refunds can go to "
        "DE89 3704 0044 0532 0130 00. ")
filler = ("The release notes for version 4.12.1 say the sync job retries every 30 seconds, "
          "but the dashboard showed 12:30:45 as the last run and nothing since. Could you "
          "check what happened and tell me when it will be fixed? ")
while len(text) < 2048:
    text += filler
open(sys.argv[1], "w").write(text[:2048])
PY
  local all=(AGENTD__GUARDRAILS__OUTPUT__REDACT_PII=true
    'AGENTD__GUARDRAILS__OUTPUT__DENY=["project zeus","launch codes"]'
    'AGENTD__GUARDRAILS__PII__TERMS=["Nightjar","Acme Corp"]'
    AGENTD__GUARDRAILS__INJECTION__MESSAGE=block)
  local webhook=("AGENTD__GUARDRAILS__WEBHOOKS__MODERATOR__URL=http://127.0.0.1:$MOCK_PORT/mock/moderate"
    AGENTD__GUARDRAILS__WEBHOOKS__MODERATOR__APPLIES_TO=output
    AGENTD__GUARDRAILS__WEBHOOKS__MODERATOR__ON_ERROR=fail_closed)
  for run in 1 2 3; do
    for variant in before defaults all buffered; do
      local extra=()
      [[ $variant == all || $variant == buffered ]] && extra+=("${all[@]}")
      [[ $variant == buffered ]] && extra+=("${webhook[@]}")
      bin="$this"
      [[ $variant == before ]] && bin="$base"
      PEER_PID=""
      start_mock --tokens 32
      start_agentd "${extra[@]}"
      bin="$this"
      load "guardrails-mock0-$variant-1inflight-run$run" --targets agentd,direct --concurrency 1 --duration 10s --rounds 2 --message-file "$message"
      load "guardrails-mock0-$variant-1000rps-run$run" --targets agentd,direct --rate 1000 --duration 10s --rounds 2 --message-file "$message"
      stop_all
    done
  done
  for variant in defaults buffered; do
    local extra=()
    [[ $variant == buffered ]] && extra+=("${webhook[@]}")
    PEER_PID=""
    start_mock --tokens 32 --token-delay-ms 5
    start_agentd "${extra[@]}"
    load "guardrails-mock5-$variant-1inflight-run1" --targets agentd,direct --concurrency 1 --duration 10s --rounds 2 --message-file "$message"
    stop_all
  done
  python3 bench/summarize.py --guardrails "$results"/guardrails-*-run*.json >&2
}

case "$scenario" in
  passthrough | check | onethread | rate1000 | tools | capacity | idle | cancel | soak | failover) "$scenario" ;;
  redis) redis_bench ;;
  cost) cost_bench ;;
  guardrails) guardrails_bench ;;
  all) passthrough; onethread; rate1000; tools; capacity; idle; cancel; soak; failover ;;
  *) echo "unknown scenario $scenario" >&2; exit 64 ;;
esac
