#!/usr/bin/env bash
# Table 5: continual forgetting on CASIA-100 with 5 remembered classes missing from the training data (4 tasks of
# 20 classes), every method or the ones named; then the table (with Acc_m, every H checked) and plots in
# $OUT_ROOT/cl_open. Usage: [SMOKE=1] [CKPT=...] [DATA_ROOT=...] [OUT_ROOT=results] [GPU=0] \
#                              bash scripts/run_cl_forget_open.sh [method ...]
# GS-LoRA++: the original's active line (no EMA logging, --BND_pro left at 18). GS-LoRA gets the same values without
# the prototype term. The baselines' lines were commented out there, with the values of the 4-task face section:
# their 'paper' presets.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
source scripts/paper_settings.sh
GS=(--BND 105 --alpha 1e-4 --warmup_alpha --big_alpha 0.015 --alpha_epoch 30 --cl_beta_list 0.14 0.14 0.2 0.15)
section_flags() {
  case "$1" in
    gs_lora)    echo "${GS[*]}" ;;
    gs_lora_pp) echo "${GS[*]} --pro_f_weight 0.0003" ;;
  esac
}
load_presets "$PRESET"
[ $# -gt 0 ] || set -- "${ALL_METHODS[@]}"
check_methods "$@" || exit 2
need_checkpoint
out=$OUT_ROOT/cl_open
runs=()
for method in "$@"; do
  # shellcheck disable=SC2046
  forget_run train_own_forget_cl.py "$out/$method" "$method" --num_of_first_cls 80 --per_forget_cls 20 --num_tasks 4 \
    --open_cls_num 5 -b 48 $(section_flags "$method")
  runs+=("$out/$method")
done
finish_section "$out" "${runs[@]}"
