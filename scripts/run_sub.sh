#!/usr/bin/env bash
# Pre-train the papers' Face Transformer (depth 6, CosFace) on CASIA-100 (the original's run_sub.sh values;
# its released checkpoint was trained with a batch of about 960 for 1,185 epochs). Needs a GPU.
# The original's own lines also run unchanged; their --lora_rank 0 and --decay-epochs 150 change nothing here
# (pre-training trains plain linears, and the cosine schedule has no decay interval), so they are left out.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
DATA_ROOT=${DATA_ROOT:-./data/faces_webface_112x112_sub100_train_test}
python train_own.py -d casia100 --data_root "$DATA_ROOT" -n VIT --vit_depth 6 -head CosFace \
  -b 480 -e 1200 --lr 3e-4 --min-lr 1e-5 --warmup-epochs 10 \
  --outdir results/ViT-P8S8_casia100_cosface_depth6 "$@"
