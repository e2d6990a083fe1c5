#!/usr/bin/env bash
# Single-step forgetting with missing classes (CASIA-100): F = 70, P = 30, 40 remembered classes without data.
# Usage: CKPT=path/to/pretrained.pth bash scripts/run_forget_open.sh [method] [more flags]
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
CKPT=${CKPT:?set CKPT to the pre-trained depth-6 checkpoint}
METHOD=${1:-gs_lora}
shift || true
case "$METHOD" in
  gs_lora) FLAGS=(--lr 1e-2 --beta 0.1 --alpha 0 --BND 110 --lora_rank 8) ;;
  l2)      FLAGS=(--lr 1e-4 --l2_lambda 0.01 --replay) ;;
  ewc)     FLAGS=(--lr 1e-4 --ewc_lambda 10 --replay) ;;
  mas)     FLAGS=(--lr 1e-4 --mas_lambda 1 --replay) ;;
  retrain) FLAGS=(--lr 3e-4) ;;
  *) echo "unknown method $METHOD (gs_lora|l2|ewc|mas|retrain)" >&2; exit 2 ;;
esac
python train_own_forget.py -d casia100 -n VIT -head CosFace -e 100 --vit_depth 6 --min-lr 1e-5 --warmup-epochs 0 \
  -r "$CKPT" --num_of_first_cls 70 --per_forget_cls 30 --open_cls_num 40 --data_ratio 0.1 -b 48 \
  --method "$METHOD" "${FLAGS[@]}" --outdir "results/single_step_open/${METHOD}" "$@"
