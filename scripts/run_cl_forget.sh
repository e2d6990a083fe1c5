#!/usr/bin/env bash
# Table 3: continual forgetting on CASIA-100, 4 tasks of 20 classes, every method with the original's script
# values. Usage: CKPT=path/to/pretrained.pth bash scripts/run_cl_forget.sh [full|few_shot] [method ...]
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
CKPT=${CKPT:?set CKPT to the pre-trained depth-6 checkpoint}
SECTION=${1:-full}
shift || true
METHODS=("$@")
COMMON=(-d casia100 -n VIT -head CosFace -e 100 --vit_depth 6 --min-lr 1e-5 --warmup-epochs 0 -r "$CKPT"
        --num_of_first_cls 80 --per_forget_cls 20 --num_tasks 4)
case "$SECTION" in
  full)     DATA=(-b 48); GS_BETA=(0.2 0.25 0.25 0.2); PROF=(0.01 0.01 0.01 0.01); PRO_BND=18 ;;
  few_shot) DATA=(--few_shot --few_shot_num 4); GS_BETA=(0.3 0.4 0.28 0.2); PROF=(0.015 0.06 0.025 0.012); PRO_BND=50 ;;
  *) echo "unknown section $SECTION (full|few_shot)" >&2; exit 2 ;;
esac
# Each method's own values from the original scripts come from its class (Method.presets['paper']); the section's
# GS-LoRA beta and prototype lists are added here.
source scripts/presets.sh
load_presets paper
section_flags() {
  case "$1" in
    gs_lora)    echo "--cl_beta_list ${GS_BETA[*]}" ;;
    gs_lora_pp) echo "--cl_beta_list ${GS_BETA[*]} --pro_f_weight ${PROF[0]} --cl_prof_list ${PROF[*]} --BND_pro $PRO_BND" ;;
  esac
}
[ ${#METHODS[@]} -gt 0 ] || METHODS=("${ALL_METHODS[@]}")
for method in "${METHODS[@]}"; do
  batch=("${DATA[@]}")
  [[ "$SECTION" == few_shot && "$method" == gs_lora* ]] && batch+=(-b 4)
  [[ "$SECTION" == few_shot && "$method" != gs_lora* ]] && batch+=(-b 48)
  check_method "$method" || exit 2
  # shellcheck disable=SC2046,SC2086
  python train_own_forget_cl.py "${COMMON[@]}" "${batch[@]}" --method "$method" ${METHOD_FLAGS[$method]} \
    $(section_flags "$method") \
    --outdir "results/cl/${SECTION}/${method}" --resume_run
done
python test_forget_cl.py --run_dir results/cl/"${SECTION}"/* --table_dir "results/cl/${SECTION}"
