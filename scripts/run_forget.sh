#!/usr/bin/env bash
# Table 2: single-step forgetting on CASIA-100 (100-5, 100-10, 100-50, 100-90), GS-LoRA++ with the original's
# script values. Usage: CKPT=path/to/pretrained.pth bash scripts/run_forget.sh [full|few_shot] [more flags]
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
CKPT=${CKPT:?set CKPT to the pre-trained depth-6 checkpoint}
SECTION=${1:-full}
shift || true
COMMON=(-d casia100 -n VIT -head CosFace -e 100 --vit_depth 6 --min-lr 1e-5 --warmup-epochs 0 -r "$CKPT"
        --lr 1e-2 --lora_rank 8 --BND 110 --data_ratio 0.1 --warmup_alpha --alpha_epoch 20 --method gs_lora_pp)
for forget in 5 10 50 90; do
  first=$((100 - forget))
  case "$SECTION" in
    full)     extra=(-b 48 --beta 0.05 --alpha 0.005 --big_alpha 0.01 --pro_f_weight 0.005) ;;
    few_shot) extra=(-b 4 --few_shot --few_shot_num 4 --beta 0.15 --alpha 0.01 --big_alpha 0.01 --pro_f_weight 0.5) ;;
    *) echo "unknown section $SECTION (full|few_shot)" >&2; exit 2 ;;
  esac
  python train_own_forget.py "${COMMON[@]}" "${extra[@]}" --num_of_first_cls "$first" --per_forget_cls "$forget" \
    --outdir "results/single_step/${SECTION}/100-${forget}" "$@"
done
