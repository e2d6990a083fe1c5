# CPU-sized settings shared by quickstart.sh, compare.sh, casia_cpu.sh and ablation.sh (sourced, not run).
# The model is vit_face_small with a softmax head: a CosFace head (s 64, m 0.35) needs hundreds of epochs from
# scratch before its margin accuracy is useful, which a CPU cannot afford; the paper scripts use CosFace.
# Every method gets the same number of optimizer steps per task (--steps_per_task), whatever it calls an epoch.
MODEL=(-n vit_face_small -head softmax)
TASKS=(--num_of_first_cls 80 --per_forget_cls 20 --num_tasks 4 -b 48 --warmup-epochs 0)

# Each method's CPU flags come from its class (Method.presets['cpu']).
source scripts/presets.sh
load_presets cpu

# Audits of what was forgotten (docs/audits.md): off here (the quick start), on in compare.sh and casia_cpu.sh.
AUDIT=()

# The synthetic-faces protocol of quickstart.sh and compare.sh: one pre-trained model, shared by both.
SYNTHETIC_PRETRAINED=runs/quickstart/pretrain/best.pth
SYNTHETIC_PRETRAIN=(-d synthetic "${MODEL[@]}" -e 15 -b 64 --lr 1e-3 --warmup-epochs 1)
SYNTHETIC_FORGET=(-d synthetic -r "$SYNTHETIC_PRETRAINED" "${TASKS[@]}" -e 10 --steps_per_task 240
                  --data_ratio 0.2 --eval_every 20)

# The CASIA-100 protocol at 32 px of casia_cpu.sh and ablation.sh: vit_face_small pre-trained for 25 epochs (about 30
# minutes on 2 cores), shared by both.
CASIA_DATA=(-d casia100 --data_root "${DATA_ROOT:-./data/faces_webface_112x112_sub100_train_test}")
CASIA_PRETRAINED=runs/casia_cpu/pretrain/best.pth
CASIA_PRETRAIN=("${CASIA_DATA[@]}" "${MODEL[@]}" -e 25 -b 128 --lr 1e-3 --warmup-epochs 1)
CASIA_FORGET=("${CASIA_DATA[@]}" -r "$CASIA_PRETRAINED" "${TASKS[@]}" -e 5 --steps_per_task 270 --data_ratio 0.1
              --eval_every 50)

# ensure_pretrained CHECKPOINT TRAIN_OWN_FLAGS...: pre-trains into CHECKPOINT's folder unless CHECKPOINT exists.
ensure_pretrained() {
  local checkpoint=$1
  shift
  [ -f "$checkpoint" ] || python train_own.py "$@" --outdir "$(dirname "$checkpoint")"
}

# run_methods OUTDIR METHOD...: each method's continual run into OUTDIR/METHOD (resumable), their re-evaluation,
# then one table (table.md, table.csv) and three plots (group_norms.png, accuracy.png, cost.png) in OUTDIR.
# Reads the array FORGET (data, checkpoint and protocol flags) and AUDIT. With audits on, it also builds the true
# oracle of the plan into OUTDIR/oracle (train_oracle.py: per task a model pre-trained without the forgotten classes;
# resumable), adds it to the table and audits every run against it (audit.md, audit.csv).
run_methods() {
  local out=$1 runs=() method
  shift
  check_methods "$@" || return 2
  for method in "$@"; do
    # shellcheck disable=SC2086
    python train_own_forget_cl.py "${FORGET[@]}" "${AUDIT[@]}" --method "$method" ${METHOD_FLAGS[$method]} \
      --outdir "$out/$method" --resume_run
    runs+=("$out/$method")
  done
  local oracle=()
  if [ ${#AUDIT[@]} -gt 0 ]; then
    python train_oracle.py --run_dir "${runs[0]}" --outdir "$out/oracle" --resume_run
    runs+=("$out/oracle")
    oracle=(--audit_oracle "$out/oracle")
  fi
  python test_forget_cl.py --run_dir "${runs[@]}" "${AUDIT[@]}" "${oracle[@]}"
  python scripts/make_table.py "${runs[@]}" --out "$out"
}
