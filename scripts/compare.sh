#!/usr/bin/env bash
# Every method (or the ones named) through the quick start's 4-task protocol on the synthetic faces, then one
# table in the layout of the paper's Table 3 (H, Acc_r, Acc_f, Acc_o per task) with the cost columns.
# Reuses the quick start's pre-trained model (trains it first when missing). About 30 minutes on 2 CPU cores.
# Usage: bash scripts/compare.sh [method ...]      e.g. bash scripts/compare.sh gs_lora ewc der_pp
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
OUT=runs/compare
METHODS=("$@")
[ ${#METHODS[@]} -gt 0 ] || METHODS=(gs_lora gs_lora_pp l2 ewc mas lwf der der_pp fdr scrub scrub_s lirf retrain)
source scripts/synthetic_settings.sh
pretrain_if_missing
method_flags() {  # CPU-sized epochs; learning rates and weights follow the original scripts where they work here
  case "$1" in
    gs_lora)    echo "${GS_LORA[*]}" ;;
    gs_lora_pp) echo "${GS_LORA_PP[*]}" ;;
    l2)         echo "--lr 1e-3 --l2_lambda 0.1 --replay" ;;
    ewc)        echo "--lr 1e-3 --ewc_lambda 10 --replay" ;;
    mas)        echo "--lr 1e-3 --mas_lambda 0.005 --replay" ;;
    lwf)        echo "--lr 1e-3 --Lwf_lambda_remain 10" ;;
    der)        echo "--lr 1e-3 --DER_lambda 0.01" ;;
    der_pp)     echo "--lr 1e-3 --DER_lambda 0.005 --DER_plus_lambda 0.005" ;;
    fdr)        echo "--lr 1e-3 --FDR_lambda 50" ;;
    scrub)      echo "--opt adam --sgda_learning_rate 1e-3 --sgda_smoothing 0 --SCRUB_superepoch 1" ;;
    scrub_s)    echo "--opt adam --sgda_learning_rate 1e-3 --sgda_smoothing 0.1 --SCRUB_superepoch 1" ;;
    lirf)       echo "--lr 1e-3" ;;
    retrain)    echo "--lr 3e-3 --warmup-epochs 1" ;;
    *) echo "unknown method $1" >&2; exit 2 ;;
  esac
}
runs=()
for method in "${METHODS[@]}"; do
  # shellcheck disable=SC2046
  python train_own_forget_cl.py "${PROTOCOL[@]}" --method "$method" $(method_flags "$method") \
    --outdir "$OUT/$method" --resume_run
  runs+=("$OUT/$method")
done
python test_forget_cl.py --run_dir "${runs[@]}" --table_dir "$OUT"
