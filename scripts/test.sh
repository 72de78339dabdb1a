#!/usr/bin/env bash
# Runs every test: the release build's ctest suite (unit, op, golden), the same suite built with
# AddressSanitizer + UndefinedBehaviorSanitizer, a short fuzzing run, and the end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${YITI_JOBS:-$(nproc)}

echo "== release build + ctest"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build
(cd build && ctest --output-on-failure -j "$jobs")

echo "== ASan + UBSan build + ctest"
# -O1 with line tables: readable reports at a fraction of the compile time of -O2 -g.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DYITI_SANITIZE=ON >/dev/null
ninja -C build-asan
# The Vulkan tests run on lavapipe (Mesa's software device) here, whatever GPUs the machine has:
# GPU vendors' drivers keep allocations to the end of the process, which LeakSanitizer would report.
# lavapipe frees everything once every object is destroyed, so no suppressions are needed and a
# Vulkan object our code forgets to destroy still shows as a leak.
vk_env=()
lvp_icd=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
[ -f "$lvp_icd" ] && vk_env=(VK_ICD_FILENAMES="$lvp_icd")
(cd build-asan && env "${vk_env[@]}" ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j "$jobs")

echo "== fuzzing the GGUF reader (${YITI_FUZZ_SECONDS:-60} s)"
scripts/fuzz_gguf.sh "${YITI_FUZZ_SECONDS:-60}" build-fuzz

if [ -d tests/e2e ] && ls tests/e2e/test_*.py >/dev/null 2>&1; then
  echo "== end-to-end tests"
  python3 -m pytest -q tests/e2e
  if [ -f "$lvp_icd" ]; then
    echo "== end-to-end tests with the model on the GPU (lavapipe)"
    env VK_ICD_FILENAMES="$lvp_icd" YITI_E2E_SERVE_ARGS="--device vulkan0 -ngl 99" YITI_E2E_SOFTWARE_GPU=1 \
      python3 -m pytest -q tests/e2e
  fi
fi
