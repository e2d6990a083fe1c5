#!/usr/bin/env bash
# Quick start on the built-in synthetic faces, CPU-sized (about 15 minutes on 2 cores):
#   1. pre-train a small Face Transformer (reused when runs/quickstart/pretrain/best.pth exists),
#   2. 4-task continual forgetting (100 -> 80 -> 60 -> 40 -> 20 classes) with GS-LoRA and GS-LoRA++,
#   3. re-evaluate the saved task checkpoints and print the paper-style table.
# Runs are resumable: rerunning skips finished tasks. Extra arguments go to both forgetting runs.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
source scripts/synthetic_settings.sh
OUT=runs/quickstart
pretrain_if_missing
python train_own_forget_cl.py "${PROTOCOL[@]}" --method gs_lora "${GS_LORA[@]}" --outdir "$OUT/gs_lora" \
  --resume_run "$@"
python train_own_forget_cl.py "${PROTOCOL[@]}" --method gs_lora_pp "${GS_LORA_PP[@]}" --outdir "$OUT/gs_lora_pp" \
  --resume_run "$@"
python test_forget_cl.py --run_dir "$OUT/gs_lora" "$OUT/gs_lora_pp" --table_dir "$OUT"
