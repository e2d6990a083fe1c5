# Settings shared by the paper scripts (sourced, not run): where things are, the model, and the smoke mode.
#
# Environment (defaults in brackets):
#   DATA_ROOT  CASIA-100 folder with train/ and test/   [./data/faces_webface_112x112_sub100_train_test]
#   CKPT       the pre-trained depth-6 Face Transformer: ours (run_sub.sh's best.pth) or the original's released
#              Backbone_VIT_Epoch_1185_...pth, which loads directly   [$OUT_ROOT/pretrain/best.pth]
#   OUT_ROOT   where every section writes its runs, tables and plots   [results; runs/smoke with SMOKE=1]
#   GPU        the GPU index, exported as CUDA_VISIBLE_DEVICES   [0]
#   REEVALUATE=0  skips re-evaluating the saved task checkpoints (test_forget_cl.py) before the table   [1]
#   SMOKE=1    the same sections on the built-in synthetic faces with a tiny model (vit_face_tiny, softmax head),
#              the methods' 'smoke' presets and SMOKE_STEPS optimizer steps per task [2]: a check that every flag
#              and path still works, in seconds on a CPU. Its numbers mean nothing.
#
# Values the original's scripts set that change nothing here and are left out: -w 0 and --num_workers 8 (images
# are decoded into memory once), --decay-epochs 100 (the cosine schedule has no decay interval), the hard-coded
# CUDA_VISIBLE_DEVICES (GPU above), and the EMA logging flags --average_weight --ema_epoch --ema_decay (logging only).
export CUDA_VISIBLE_DEVICES=${GPU:-0}
if [ "${SMOKE:-0}" = 1 ]; then
  OUT_ROOT=${OUT_ROOT:-runs/smoke}
  DATA=(-d synthetic --cache_dir "${CACHE_DIR:-data/cache}")
  MODEL=(-n vit_face_tiny -head softmax)
  PRETRAIN=(-e 4 -b 128 --lr 3e-3 --warmup-epochs 0)
  # Appended after every section's and method's flags, so they win: a few steps, evaluated once at the end.
  SMOKE_FLAGS=(--steps_per_task "${SMOKE_STEPS:-2}" --eval_every 1000)
  PRESET=smoke
else
  OUT_ROOT=${OUT_ROOT:-results}
  DATA=(-d casia100 --data_root "${DATA_ROOT:-./data/faces_webface_112x112_sub100_train_test}")
  MODEL=(-n VIT --vit_depth 6 -head CosFace)
  # The original's run_sub.sh values. Its released checkpoint was trained with a batch of about 960 for 1,185
  # epochs (the T-PAMI model); the script says -b 480 -e 1200.
  PRETRAIN=(-b 480 -e 1200 --lr 3e-4 --min-lr 1e-5 --warmup-epochs 10)
  SMOKE_FLAGS=()
  PRESET=paper
fi
CKPT_GIVEN=${CKPT:+1}  # smoke mode pre-trains a missing default checkpoint, never one that CKPT names
CKPT=${CKPT:-$OUT_ROOT/pretrain/best.pth}
# Every forgetting run of the papers: 100 epochs per task, cosine to 1e-5, no warm-up (the original's values).
FORGET_COMMON=(-e 100 --min-lr 1e-5 --warmup-epochs 0)

# The method sections call load_presets "$PRESET" (METHOD_FLAGS, ALL_METHODS); it costs a Python start.
source scripts/presets.sh

# need_checkpoint: stops with one line when CKPT is missing (with SMOKE=1 and no CKPT given, the tiny pre-training
# makes the default one first).
need_checkpoint() {
  if [ "${SMOKE:-0}" = 1 ] && [ -z "$CKPT_GIVEN" ] && [ ! -f "$CKPT" ]; then
    python train_own.py "${DATA[@]}" "${MODEL[@]}" "${PRETRAIN[@]}" --outdir "$(dirname "$CKPT")"
  fi
  [ -f "$CKPT" ] || { echo "no checkpoint at $CKPT: run scripts/run_sub.sh or set CKPT" >&2; exit 2; }
}

# forget_run ENTRY OUTDIR METHOD FLAGS...: one resumable run of METHOD. Flag order: data, model, checkpoint, the
# common schedule, the method's preset, the section's FLAGS, then the smoke overrides (a later flag wins).
forget_run() {
  local entry=$1 outdir=$2 method=$3
  shift 3
  # shellcheck disable=SC2086
  python "$entry" "${DATA[@]}" "${MODEL[@]}" -r "$CKPT" "${FORGET_COMMON[@]}" --method "$method" \
    ${METHOD_FLAGS[$method]} "$@" "${SMOKE_FLAGS[@]}" --outdir "$outdir" --resume_run
}

# finish_section OUTDIR RUN_DIR...: re-evaluates the runs from their saved checkpoints (skipped with REEVALUATE=0),
# then writes the section's table (Markdown, CSV; every H checked) and its plots into OUTDIR.
finish_section() {
  local out=$1
  shift
  [ "${REEVALUATE:-1}" = 0 ] || python test_forget_cl.py --run_dir "$@"
  python scripts/make_table.py "$@" --out "$out"
}
