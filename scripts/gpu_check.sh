#!/usr/bin/env bash
# The first minutes on a GPU (benchmarks/gpu_check.py): the CUDA path end to end on real CASIA-100 at 112 px, the
# full-configuration benchmark in fp32 and bf16, ViT-B/16, and the extrapolated time of Table 3's protocol; one
# summary, also in runs/gpu_check/gpu_check.json. About 5 minutes on one H200.
# Usage: bash scripts/gpu_check.sh [--data_root DIR] [--dry-run]
# NO_VENV=1 uses the python3 on the PATH (a machine whose CUDA build of torch is installed already).
if [ "${NO_VENV:-0}" = 1 ]; then
  set -euo pipefail
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  export HF_HUB_OFFLINE=1
  exec python3 benchmarks/gpu_check.py "$@"
fi
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
exec python benchmarks/gpu_check.py "$@"
