#!/usr/bin/env bash
# Table 4: continual forgetting on ImageNet100 with torchvision's ViT-B/16, 4 tasks of 20 classes (100-20, 80-20,
# 60-20, 40-20), every method of the original's run_cl_forget_image.sh or the ones named; Acc_m on the 900 other
# ImageNet classes when IMAGENET900_ROOT is set; then the table in $OUT_ROOT/cl_image.
# Usage: [SMOKE=1] [CKPT=vit_b_16-c867db91.pth] [DATA_ROOT=./data/imagenet100] [IMAGENET900_ROOT=folder]
#        [OUT_ROOT=results] [GPU=0] [NUM_WORKERS=8] bash scripts/run_cl_forget_image.sh [method ...]
# SMOKE=1 generates a 10-class wnid tree, a 3-class outside folder and a tiny torchvision ViT weight file under
# $OUT_ROOT/generated_imagenet, and runs every method's 'smoke' preset for SMOKE_STEPS [2] steps per task.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
source scripts/presets.sh
export CUDA_VISIBLE_DEVICES=${GPU:-0}
# The original's ImageNet100 values, one line per method. They differ from the face values of
# Method.presets['paper'], so they live here, once. Left out as no-ops here: --one_stage --lora_rank 0 (baselines),
# --vit_depth 6 (ViT-B/16 has 12 blocks), -head CosFace (ViT-B/16 keeps its linear head), --decay-epochs and the
# EMA logging flags; the GS-LoRA line's --beta 0.15 is overridden by its --cl_beta_list.
declare -A IMAGENET_FLAGS=(
  [gs_lora]="--lr 1e-2 --lora_rank 8 --BND 105 --alpha 1e-4 --cl_beta_list 0.2 0.25 0.25 0.25"
  [gs_lora_pp]="--lr 1e-2 --lora_rank 8 --BND 105 --alpha 1e-4 --cl_beta_list 0.2 0.25 0.25 0.25 --pro_f_weight 0.05"
  [l2]="--lr 1e-4 --l2_lambda 0.05 --replay"
  [ewc]="--lr 1e-4 --ewc_lambda 3 --replay"
  [mas]="--lr 1e-4 --mas_lambda 0.002 --replay"
  [lwf]="--lr 1e-4 --Lwf_lambda_remain 10 --replay"
  [der]="--lr 1e-4 --DER_lambda 0.01 --replay"
  [der_pp]="--lr 1e-4 --DER_lambda 0.01 --DER_plus_lambda 0.5 --replay"
  [fdr]="--lr 1e-3 --FDR_lambda 40 --min-lr 1e-8 --replay"
  [scrub]="--lr 1e-4 --opt adam --sgda_learning_rate 1e-4 --sgda_smoothing 0 --sgda_gamma 20"
  [scrub_s]="--lr 1e-4 --opt adam --sgda_learning_rate 1e-4 --sgda_smoothing 0.05 --sgda_gamma 10"
  [retrain]="--lr 3e-4 --warmup-epochs 5"
)
ORDER=(gs_lora gs_lora_pp l2 ewc mas lwf der der_pp fdr scrub scrub_s retrain)
load_presets smoke  # fills ALL_METHODS for check_method; in smoke mode also the flags
[ $# -gt 0 ] || set -- "${ORDER[@]}"
check_methods "$@" || exit 2
for method in "$@"; do  # every name, before any run
  [ -n "${IMAGENET_FLAGS[$method]+set}" ] || { echo "no ImageNet100 values for $method: choose from ${ORDER[*]}" >&2
                                               exit 2; }
done
if [ "${SMOKE:-0}" = 1 ]; then
  OUT_ROOT=${OUT_ROOT:-runs/smoke}
  gen=$OUT_ROOT/generated_imagenet
  [ -f "$gen/vit_tv_tiny_torchvision.pth" ] || python -m data.generated_imagenet "$gen"
  DATA_ROOT=$gen/imagenet100 IMAGENET900_ROOT=$gen/imagenet900 CKPT=$gen/vit_tv_tiny_torchvision.pth
  for m in "${ORDER[@]}"; do IMAGENET_FLAGS[$m]=${METHOD_FLAGS[$m]}; done
  SETTING=(-n vit_tv_tiny -b 8 --data_ratio 1 --num_of_first_cls 8 --per_forget_cls 2 --num_tasks 4)
  SMOKE_FLAGS=(--steps_per_task "${SMOKE_STEPS:-2}" --eval_every 1000)  # after the method's flags, so they win
  NUM_WORKERS=${NUM_WORKERS:-0}
else
  OUT_ROOT=${OUT_ROOT:-results}
  DATA_ROOT=${DATA_ROOT:-./data/imagenet100}
  CKPT=${CKPT:?set CKPT to torchvision\'s vit_b_16-c867db91.pth (see the README section on ImageNet100)}
  SETTING=(-n VIT_B16 -b 48 -e 100 --data_ratio 0.05 --num_of_first_cls 80 --per_forget_cls 20 --num_tasks 4)
  SMOKE_FLAGS=()
fi
MISSING=()
[ -z "${IMAGENET900_ROOT:-}" ] || MISSING=(--imagenet900_root "$IMAGENET900_ROOT")
out=$OUT_ROOT/cl_image
runs=()
for method in "$@"; do
  # Flag order: data, setting, the common schedule, the method's values, smoke overrides (a later flag wins).
  # shellcheck disable=SC2086
  python train_own_forget_cl.py -d imagenet100 --data_root "$DATA_ROOT" -r "$CKPT" "${MISSING[@]}" \
    --num_workers "${NUM_WORKERS:-8}" "${SETTING[@]}" --min-lr 1e-5 --warmup-epochs 0 --method "$method" \
    ${IMAGENET_FLAGS[$method]} "${SMOKE_FLAGS[@]}" --outdir "$out/$method" --resume_run
  runs+=("$out/$method")
done
python test_forget_cl.py --run_dir "${runs[@]}" --table_dir "$out"
