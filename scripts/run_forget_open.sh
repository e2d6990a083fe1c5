#!/usr/bin/env bash
# Single-step forgetting with missing classes on CASIA-100 (no paper table): F = 70, P = 30, 40 remembered classes
# without training data, for the methods of the original's run_forget_open.sh (its active L2 line and its
# commented GS-LoRA, EWC, MAS and Retrain lines; default all five); then the table and plots in
# $OUT_ROOT/single_step_open. Usage: [SMOKE=1] [CKPT=...] [DATA_ROOT=...] bash scripts/run_forget_open.sh [method ...]
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
source scripts/paper_settings.sh
# The original's values for this script; they differ from the 'paper' presets (L2 0.01, MAS 1) and win over them.
section_flags() {
  case "$1" in
    gs_lora) echo "--lr 1e-2 --beta 0.1 --alpha 0 --BND 110 --lora_rank 8" ;;
    l2)      echo "--lr 1e-4 --l2_lambda 0.01 --replay" ;;
    ewc)     echo "--lr 1e-4 --ewc_lambda 10 --replay" ;;
    mas)     echo "--lr 1e-4 --mas_lambda 1 --replay" ;;
    retrain) echo "--lr 3e-4" ;;
    *) echo "run_forget_open.sh has no values for '$1' (gs_lora|l2|ewc|mas|retrain)" >&2; return 2 ;;
  esac
}
load_presets "$PRESET"
[ $# -gt 0 ] || set -- gs_lora l2 ewc mas retrain
for method in "$@"; do section_flags "$method" > /dev/null || exit 2; done  # every name, before any run
need_checkpoint
out=$OUT_ROOT/single_step_open
runs=()
for method in "$@"; do
  flags=$(section_flags "$method")
  # shellcheck disable=SC2086
  forget_run train_own_forget.py "$out/$method" "$method" --num_of_first_cls 70 --per_forget_cls 30 \
    --open_cls_num 40 --data_ratio 0.1 -b 48 $flags
  runs+=("$out/$method")
done
finish_section "$out" "${runs[@]}"
