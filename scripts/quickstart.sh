#!/usr/bin/env bash
# Quick start on the built-in synthetic faces, CPU-sized (about 5 minutes on 2 cores):
#   1. pre-train a small Face Transformer (reused when runs/quickstart/pretrain/best.pth exists),
#   2. 4-task continual forgetting (100 -> 80 -> 60 -> 40 -> 20 classes) with GS-LoRA and GS-LoRA++,
#   3. re-evaluate the saved task checkpoints and print the paper-style table.
# Runs are resumable: rerunning skips finished tasks.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
source scripts/cpu_settings.sh
ensure_pretrained "$SYNTHETIC_PRETRAINED" "${SYNTHETIC_PRETRAIN[@]}"
FORGET=("${SYNTHETIC_FORGET[@]}")
run_methods runs/quickstart gs_lora gs_lora_pp
