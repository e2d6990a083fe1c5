#!/usr/bin/env bash
# CASIA-100 on a CPU at reduced resolution (32 px): pre-train vit_face_small for 25 epochs (about 30 minutes on
# 2 cores; reused when present), then the 4-task protocol for the methods named (default GS-LoRA, GS-LoRA++,
# EWC, LwF, DER++, SCRUB, Retrain), the true oracle of the plan (four pre-trainings without the forgotten classes),
# one table and the audits against the oracle. Usage: DATA_ROOT=... bash scripts/casia_cpu.sh [method ...]
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
source scripts/cpu_settings.sh
ensure_pretrained "$CASIA_PRETRAINED" "${CASIA_PRETRAIN[@]}"
FORGET=("${CASIA_FORGET[@]}")
AUDIT=(--audit)  # docs/audits.md
[ $# -gt 0 ] || set -- gs_lora gs_lora_pp ewc lwf der_pp scrub retrain
run_methods runs/casia_cpu "$@"
