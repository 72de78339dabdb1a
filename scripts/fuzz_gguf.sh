#!/usr/bin/env bash
# Builds the GGUF reader's libFuzzer target with clang and runs it for a while.
# usage: scripts/fuzz_gguf.sh [SECONDS] [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
out=${2:-$here/build-fuzz}
shared=${YITI_SHARED_DIR:-$here/../shared}
mkdir -p "$out/corpus"
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -I"$here/src" \
  "$here/tests/fuzz/fuzz_gguf.cpp" "$here/src/gguf/gguf.cpp" "$here/src/core/error.cpp" "$here/src/core/dtype.cpp" \
  -o "$out/fuzz_gguf"
# Seeds: the heads of real model files (metadata and tensor tables) and one whole small model.
for f in "$shared"/models/stories260K.gguf "$shared"/models/synth-llama-Q4_K_M.gguf "$shared"/models/synth-deepseek2-Q2_K.gguf; do
  [ -f "$f" ] && head -c 16384 "$f" > "$out/corpus/$(basename "$f").head"
done
cp "$shared/models/stories260K-f16.gguf" "$out/corpus/" 2>/dev/null || true
"$out/fuzz_gguf" "$out/corpus" -max_total_time="$secs" -max_len=1048576 -rss_limit_mb=2048 -timeout=10 \
  -print_final_stats=1 2>&1 | tail -n 15
