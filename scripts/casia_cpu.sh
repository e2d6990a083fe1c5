#!/usr/bin/env bash
# CASIA-100 on a CPU at reduced resolution (32 px): pre-train vit_face_small for 25 epochs (about 30 minutes on
# 2 cores; reused when present), then the 4-task protocol for the methods named (default GS-LoRA, GS-LoRA++,
# EWC, LwF, DER++, SCRUB, Retrain), the true oracle of the plan (four pre-trainings without the forgotten classes),
# one table and the audits against the oracle. Usage: DATA_ROOT=... bash scripts/casia_cpu.sh [method ...]
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
source scripts/cpu_settings.sh
DATA=(-d casia100 --data_root "${DATA_ROOT:-./data/faces_webface_112x112_sub100_train_test}")
OUT=runs/casia_cpu
ensure_pretrained "$OUT/pretrain/best.pth" "${DATA[@]}" "${MODEL[@]}" -e 25 -b 128 --lr 1e-3 --warmup-epochs 1
FORGET=("${DATA[@]}" -r "$OUT/pretrain/best.pth" "${TASKS[@]}" -e 5 --steps_per_task 270 --data_ratio 0.1 --eval_every 50)
AUDIT=(--audit)  # docs/audits.md
[ $# -gt 0 ] || set -- gs_lora gs_lora_pp ewc lwf der_pp scrub retrain
run_methods "$OUT" "$@"
