#!/usr/bin/env bash
# Every method (or the ones named) through the quick start's 4-task protocol on the synthetic faces, then one
# table in the layout of the paper's Table 3 (H, Acc_r, Acc_f, Acc_o per task) with the cost columns, the audit
# table (audit.md: membership inference, embedding probe, verification, relearn attacks against the true oracle,
# built into runs/compare/oracle) and three plots (group_norms.png, accuracy.png, cost.png) in runs/compare.
# Reuses the quick start's pre-trained model (runs the quick start's pre-training when it is missing).
# Usage: bash scripts/compare.sh [method ...]      e.g. bash scripts/compare.sh gs_lora ewc der_pp
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
source scripts/cpu_settings.sh
ensure_pretrained "$SYNTHETIC_PRETRAINED" "${SYNTHETIC_PRETRAIN[@]}"
FORGET=("${SYNTHETIC_FORGET[@]}")
AUDIT=(--audit)  # docs/audits.md: about 10 s of CPU per task and method
[ $# -gt 0 ] || set -- "${ALL_METHODS[@]}"
run_methods runs/compare "$@"
