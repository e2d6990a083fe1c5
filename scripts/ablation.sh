#!/usr/bin/env bash
# The papers' ablation of where LoRA goes and how the group lasso groups it, CPU-sized: GS-LoRA with casia_cpu.sh's
# flags and pre-trained model on CASIA-100 at 32 px, once per variant (LoRA on the FFN or on the attention's qkv;
# one group per block, per LoRA layer or per matrix), then one table and its plots in runs/ablation.
# SMOKE=1: the same on the synthetic faces with the tiny model (CKPT, or pre-trained here) and two steps per task.
# Usage: DATA_ROOT=... [OUT_ROOT=runs] bash scripts/ablation.sh [variant ...] [-- flag ...]
#   variants: see VARIANTS (default: all); flags after -- go to every run, e.g. -- --seed 2 for another class order
#   (with OUT_ROOT=runs/seed2 so that it does not resume the first order's runs).
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
source scripts/cpu_settings.sh
declare -A VARIANTS=(
  [ffn_block]="--lora_pos FFN --grouping block"  # the papers' GS-LoRA
  [ffn_lora]="--lora_pos FFN --grouping lora"
  [ffn_matrix]="--lora_pos FFN --grouping matrix"
  [attention_block]="--lora_pos Attention --grouping block"
  [attention_matrix]="--lora_pos Attention --grouping matrix"
)
ORDER=(ffn_block ffn_lora ffn_matrix attention_block attention_matrix)
chosen=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do chosen+=("$1"); shift; done
[ $# -gt 0 ] && shift  # the --; what is left goes to every run
[ ${#chosen[@]} -gt 0 ] || chosen=("${ORDER[@]}")
for variant in "${chosen[@]}"; do
  [ -n "${VARIANTS[$variant]+set}" ] || { echo "unknown variant '$variant'; choose from: ${ORDER[*]}" >&2; exit 2; }
done
if [ "${SMOKE:-0}" = 1 ]; then
  OUT=${OUT_ROOT:-runs/smoke}/ablation
  CKPT=${CKPT:-$OUT/pretrain/best.pth}
  ensure_pretrained "$CKPT" -d synthetic -n vit_face_tiny -head softmax -e 4 -b 128 --lr 3e-3 --warmup-epochs 0
  load_presets smoke
  FORGET=(-d synthetic -r "$CKPT" "${TASKS[@]}" --steps_per_task 2 --eval_every 1000)
else
  OUT=${OUT_ROOT:-runs}/ablation
  ensure_pretrained "$CASIA_PRETRAINED" "${CASIA_PRETRAIN[@]}"
  FORGET=("${CASIA_FORGET[@]}")
fi
runs=()
for variant in "${chosen[@]}"; do
  # shellcheck disable=SC2086
  python train_own_forget_cl.py "${FORGET[@]}" --method gs_lora ${METHOD_FLAGS[gs_lora]} ${VARIANTS[$variant]} "$@" \
    --outdir "$OUT/$variant" --resume_run
  runs+=("$OUT/$variant")
done
python scripts/make_table.py "${runs[@]}" --out "$OUT"
