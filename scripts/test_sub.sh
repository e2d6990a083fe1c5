#!/usr/bin/env bash
# Section "pre-training test": overall and per-class test accuracy (both conventions) of a pre-trained checkpoint,
# written next to it as <checkpoint name>_test_accuracy.json.
# Usage: [SMOKE=1] [DATA_ROOT=...] bash scripts/test_sub.sh [CHECKPOINT [more flags]]   (default: $CKPT)
# --model CKPT is the original test script's flag (= --eval_only -r CKPT), so the original's line also runs as is:
#   python train_own.py -w 0 --batch_size 2 --lora_rank 0 --model CKPT
# The model comes from the checkpoint (an original one: VIT, depth 6, the defaults of its --network and --depth).
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
source scripts/paper_settings.sh
CKPT=${1:-$CKPT}
shift || true
[ -f "$CKPT" ] || { echo "no checkpoint at $CKPT: pass one, set CKPT, or run scripts/run_sub.sh" >&2; exit 2; }
python train_own.py "${DATA[@]}" --model "$CKPT" "$@"
