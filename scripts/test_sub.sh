#!/usr/bin/env bash
# Test a pre-trained checkpoint on CASIA-100: overall and per-class accuracy (both conventions).
# Usage: bash scripts/test_sub.sh CHECKPOINT [more flags]
# --model CKPT is the original test script's flag (= --eval_only -r CKPT), so the original's line also runs as is:
#   python train_own.py -w 0 --batch_size 2 --lora_rank 0 --model CKPT
# The model comes from the checkpoint (an original one: VIT, depth 6, the defaults of its --network and --depth).
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
CKPT=${1:?usage: bash scripts/test_sub.sh CHECKPOINT}
shift
DATA_ROOT=${DATA_ROOT:-./data/faces_webface_112x112_sub100_train_test}
python train_own.py -d casia100 --data_root "$DATA_ROOT" --model "$CKPT" --outdir "$(dirname "$CKPT")/test" "$@"
