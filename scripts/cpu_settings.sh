# CPU-sized settings shared by quickstart.sh, compare.sh and casia_cpu.sh (sourced, not run).
# The model is vit_face_small with a softmax head: a CosFace head (s 64, m 0.35) needs hundreds of epochs from
# scratch before its margin accuracy is useful, which a CPU cannot afford; the paper scripts use CosFace.
MODEL=(-n vit_face_small -head softmax)
TASKS=(--num_of_first_cls 80 --per_forget_cls 20 --num_tasks 4 -b 48 --warmup-epochs 0)
ALL_METHODS=(gs_lora gs_lora_pp l2 ewc mas lwf der der_pp fdr scrub scrub_s lirf retrain)

# The synthetic-faces protocol of quickstart.sh and compare.sh: one pre-trained model, shared by both.
SYNTHETIC_PRETRAINED=runs/quickstart/pretrain/best.pth
SYNTHETIC_PRETRAIN=(-d synthetic "${MODEL[@]}" -e 15 -b 64 --lr 1e-3 --warmup-epochs 1)
SYNTHETIC_FORGET=(-d synthetic -r "$SYNTHETIC_PRETRAINED" "${TASKS[@]}" -e 10 --data_ratio 0.2 --eval_every 20)

# ensure_pretrained CHECKPOINT TRAIN_OWN_FLAGS...: pre-trains into CHECKPOINT's folder unless CHECKPOINT exists.
ensure_pretrained() {
  local checkpoint=$1
  shift
  [ -f "$checkpoint" ] || python train_own.py "$@" --outdir "$(dirname "$checkpoint")"
}

method_flags() {  # learning rates and weights of the original scripts where they work at this size
  local gs="--lr 1e-2 --lora_rank 8 --BND 30 --cl_beta_list 0.2 0.2 0.2 0.2 --alpha 1e-3"
  case "$1" in
    gs_lora)    echo "$gs" ;;
    gs_lora_pp) echo "$gs --pro_f_weight 0.01 --BND_pro 18" ;;
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
    *) echo "unknown method '$1'; choose from: ${ALL_METHODS[*]}" >&2; return 2 ;;
  esac
}

# run_methods OUTDIR METHOD...: each method's continual run into OUTDIR/METHOD (resumable), then one table.
# Reads the array FORGET (data, checkpoint and protocol flags).
run_methods() {
  local out=$1 runs=() flags
  shift
  for method in "$@"; do
    flags=$(method_flags "$method")
    # shellcheck disable=SC2086
    python train_own_forget_cl.py "${FORGET[@]}" --method "$method" $flags --outdir "$out/$method" --resume_run
    runs+=("$out/$method")
  done
  python test_forget_cl.py --run_dir "${runs[@]}" --table_dir "$out"
}
