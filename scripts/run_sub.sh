#!/usr/bin/env bash
# Section "pre-training": the papers' Face Transformer (depth 6, CosFace) on CASIA-100 with the original's
# run_sub.sh values (see PRETRAIN in paper_settings.sh), into $OUT_ROOT/pretrain/best.pth. Needs a GPU; SMOKE=1
# pre-trains the tiny model on the synthetic faces instead. Extra arguments go to train_own.py.
# Usage: [SMOKE=1] [DATA_ROOT=...] [OUT_ROOT=results] [GPU=0] bash scripts/run_sub.sh [more flags]
# The original's own lines also run unchanged; their --lora_rank 0 and --decay-epochs 150 change nothing here
# (pre-training trains plain linears, and the cosine schedule has no decay interval), so they are left out.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
source scripts/paper_settings.sh
python train_own.py "${DATA[@]}" "${MODEL[@]}" "${PRETRAIN[@]}" --outdir "$OUT_ROOT/pretrain" "$@"
