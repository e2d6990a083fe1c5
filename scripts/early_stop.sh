#!/usr/bin/env bash
# Early stopping measured (docs/early-stopping.md): GS-LoRA and GS-LoRA++ run once with the whole budget of steps
# per task and once with --early_stop K, on the synthetic faces (compare.sh's protocol) or on CASIA-100 at 32 px
# (casia_cpu.sh's, reusing its pre-trained model), then one table of the four runs.
# The presets' per-image bound (ln C) is one the softmax head's forget cross entropy reaches, so the rule can fire
# (docs/early-stopping.md's tables were measured with the former batch-hinge preset and --BND 5 / 10).
# The two runs of a method go in parallel, one thread each.
# Usage: bash scripts/early_stop.sh synthetic|casia [STEPS_PER_TASK (960)] [K (3)] [R (0)] [GOAL (method)]
#        (CASIA: DATA_ROOT=...)
# R > 0 adds --early_stop_growth R (the patience grows to R times the task's evaluations so far); GOAL none adds
# --early_stop_goal none (the selection H alone ends a task).
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
source scripts/cpu_settings.sh
data=${1:?usage: bash scripts/early_stop.sh synthetic|casia [STEPS_PER_TASK] [K] [R] [GOAL]}
steps=${2:-960}
patience=${3:-3}
growth=${4:-0}
goal=${5:-method}
case $data in
  synthetic)
    ensure_pretrained "$SYNTHETIC_PRETRAINED" "${SYNTHETIC_PRETRAIN[@]}"
    FORGET=("${SYNTHETIC_FORGET[@]}") ;;
  casia)
    [ -f "$CASIA_PRETRAINED" ] || { echo "run scripts/casia_cpu.sh first: it pre-trains the model" >&2; exit 2; }
    FORGET=("${CASIA_DATA[@]}" -r "$CASIA_PRETRAINED" "${TASKS[@]}" -e 5 --data_ratio 0.1) ;;
  *) echo "unknown data set '$data'; choose synthetic or casia" >&2; exit 2 ;;
esac
out=runs/early_stop/$data
export OMP_NUM_THREADS=1
runs=()
failed=0
pids=()
for method in gs_lora gs_lora_pp; do
  stopped="k$patience"
  [ "$growth" = 0 ] || stopped="${stopped}_r$growth"
  [ "$goal" = method ] || stopped="${stopped}_goal_$goal"
  for variant in full "$stopped"; do
    extra=()
    [ "$variant" = full ] || extra=(--early_stop "$patience" --early_stop_growth "$growth" --early_stop_goal "$goal")
    mkdir -p "$out/$variant"
    # shellcheck disable=SC2086
    python train_own_forget_cl.py "${FORGET[@]}" --method "$method" ${METHOD_FLAGS[$method]} \
      --steps_per_task "$steps" --eval_every 20 "${extra[@]}" --outdir "$out/$variant/$method" --resume_run \
      --no_tensorboard > "$out/$variant/$method.log" 2>&1 &
    pids+=($!)
    runs+=("$out/$variant/$method")
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  pids=()
done
[ $failed = 0 ] || { echo "a run failed: see $out/*/*.log" >&2; exit 1; }
python scripts/make_table.py "${runs[@]}" --out "$out"
