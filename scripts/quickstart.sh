#!/usr/bin/env bash
# Quick start on the built-in synthetic faces, CPU-sized (about 15 minutes on 2 cores):
#   1. pre-train a small Face Transformer (reused when runs/quickstart/pretrain/best.pth exists),
#   2. 4-task continual forgetting (100 -> 80 -> 60 -> 40 -> 20 classes) with GS-LoRA and GS-LoRA++,
#   3. re-evaluate the saved task checkpoints and print the paper-style table.
# Runs are resumable: rerunning skips finished tasks.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
source scripts/cpu_settings.sh
OUT=runs/quickstart
if [ ! -f "$OUT/pretrain/best.pth" ]; then
  python train_own.py -d synthetic "${MODEL[@]}" -e 15 -b 64 --lr 1e-3 --warmup-epochs 1 --outdir "$OUT/pretrain"
fi
FORGET=(-d synthetic -r "$OUT/pretrain/best.pth" "${TASKS[@]}" -e 10 --data_ratio 0.2 --eval_every 20)
run_methods "$OUT" gs_lora gs_lora_pp
