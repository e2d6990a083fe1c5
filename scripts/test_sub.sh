#!/usr/bin/env bash
# Test a pre-trained checkpoint on CASIA-100: overall and per-class accuracy (both conventions).
# Usage: bash scripts/test_sub.sh CHECKPOINT [more flags]
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
CKPT=${1:?usage: bash scripts/test_sub.sh CHECKPOINT}
shift
DATA_ROOT=${DATA_ROOT:-./data/faces_webface_112x112_sub100_train_test}
python train_own.py -d casia100 --data_root "$DATA_ROOT" --eval_only -r "$CKPT" \
  --outdir "$(dirname "$CKPT")/test" "$@"
