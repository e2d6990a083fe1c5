#!/usr/bin/env bash
# Table 3: continual forgetting on CASIA-100, 4 tasks of 20 classes, every method with the original's script
# values. Usage: CKPT=path/to/pretrained.pth bash scripts/run_cl_forget.sh [full|few_shot] [method ...]
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
CKPT=${CKPT:?set CKPT to the pre-trained depth-6 checkpoint}
SECTION=${1:-full}
shift || true
METHODS=("$@")
[ ${#METHODS[@]} -gt 0 ] || METHODS=(gs_lora gs_lora_pp l2 ewc mas lwf der der_pp fdr scrub scrub_s lirf retrain)
COMMON=(-d casia100 -n VIT -head CosFace -e 100 --vit_depth 6 --min-lr 1e-5 --warmup-epochs 0 -r "$CKPT"
        --num_of_first_cls 80 --per_forget_cls 20 --num_tasks 4)
case "$SECTION" in
  full)     DATA=(-b 48); GS_BETA=(0.2 0.25 0.25 0.2); PROF=(0.01 0.01 0.01 0.01); PRO_BND=18 ;;
  few_shot) DATA=(--few_shot --few_shot_num 4); GS_BETA=(0.3 0.4 0.28 0.2); PROF=(0.015 0.06 0.025 0.012); PRO_BND=50 ;;
  *) echo "unknown section $SECTION (full|few_shot)" >&2; exit 2 ;;
esac
method_flags() {  # the original scripts' values, per method
  case "$1" in
    gs_lora)    echo "--lr 1e-2 --lora_rank 8 --BND 105 --alpha 1e-4 --cl_beta_list ${GS_BETA[*]}" ;;
    gs_lora_pp) echo "$(method_flags gs_lora) --pro_f_weight ${PROF[0]} --cl_prof_list ${PROF[*]} --BND_pro $PRO_BND" ;;
    l2)         echo "--lr 1e-4 --l2_lambda 0.1 --replay" ;;
    ewc)        echo "--lr 1e-4 --ewc_lambda 10 --replay" ;;
    mas)        echo "--lr 1e-4 --mas_lambda 0.005 --replay" ;;
    lwf)        echo "--lr 1e-4 --Lwf_lambda_remain 10" ;;
    der)        echo "--lr 1e-3 --DER_lambda 0.01" ;;
    der_pp)     echo "--lr 1e-3 --DER_lambda 0.005 --DER_plus_lambda 0.005" ;;
    fdr)        echo "--lr 1e-3 --FDR_lambda 50" ;;
    scrub)      echo "--lr 1e-4 --opt adam --sgda_learning_rate 1e-4 --sgda_smoothing 0" ;;
    scrub_s)    echo "--lr 1e-4 --opt adam --sgda_learning_rate 1e-4 --sgda_smoothing 0.1" ;;
    lirf)       echo "--lr 1e-4" ;;
    retrain)    echo "--lr 3e-4 --warmup-epochs 5" ;;
    *) echo "unknown method $1" >&2; exit 2 ;;
  esac
}
for method in "${METHODS[@]}"; do
  batch=("${DATA[@]}")
  [[ "$SECTION" == few_shot && "$method" == gs_lora* ]] && batch+=(-b 4)
  [[ "$SECTION" == few_shot && "$method" != gs_lora* ]] && batch+=(-b 48)
  # shellcheck disable=SC2046
  python train_own_forget_cl.py "${COMMON[@]}" "${batch[@]}" --method "$method" $(method_flags "$method") \
    --outdir "results/cl/${SECTION}/${method}" --resume_run
done
python test_forget_cl.py --run_dir results/cl/"${SECTION}"/* --table_dir "results/cl/${SECTION}"
