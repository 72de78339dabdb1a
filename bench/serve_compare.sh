#!/usr/bin/env bash
# Runs `yiti bench-serve` against `yiti serve` and, when LLAMA_SERVER points at a llama.cpp
# llama-server binary (built outside this repository), against it too: same model, same threads,
# same parallel slots, same load. Prints both tables.
#   LLAMA_SERVER=/path/to/llama-server bench/serve_compare.sh MODEL.gguf [THREADS] [PARALLEL]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
model=${1:?usage: bench/serve_compare.sh MODEL.gguf [THREADS] [PARALLEL]}
threads=${2:-2}
np=${3:-16}
yiti=${YITI_BIN:-$here/build/yiti}
port_y=${PORT_YITI:-18231}
port_l=${PORT_LLAMA:-18232}
ctx=$((np * 1024))

wait_up() {
  for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "server on port $1 did not come up" >&2
  return 1
}

echo "== yiti serve ($threads threads, $np slots)"
"$yiti" serve -m "$model" --port "$port_y" --parallel "$np" -t "$threads" --quiet >/tmp/yiti-serve-bench.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
wait_up "$port_y"
"$yiti" bench-serve --url "http://127.0.0.1:$port_y" --json /tmp/bench-serve-yiti.json
kill $pid; wait $pid 2>/dev/null || true

if [ -n "${LLAMA_SERVER:-}" ]; then
  echo "== llama.cpp llama-server ($threads threads, -np $np, -c $ctx)"
  "$LLAMA_SERVER" -m "$model" --port "$port_l" -np "$np" -c "$ctx" -t "$threads" >/tmp/llama-server-bench.log 2>&1 &
  pid=$!
  wait_up "$port_l"
  "$yiti" bench-serve --url "http://127.0.0.1:$port_l" --json /tmp/bench-serve-llama.json
  kill $pid; wait $pid 2>/dev/null || true
fi
