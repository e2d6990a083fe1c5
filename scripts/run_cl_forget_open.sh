#!/usr/bin/env bash
# Table 5: continual forgetting with 5 remembered classes missing from the training data (CASIA-100, 4 tasks),
# GS-LoRA++ with the original's script values. Usage: CKPT=path/to/pretrained.pth bash scripts/run_cl_forget_open.sh
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
CKPT=${CKPT:?set CKPT to the pre-trained depth-6 checkpoint}
python train_own_forget_cl.py -d casia100 -n VIT -head CosFace -e 100 --vit_depth 6 --min-lr 1e-5 \
  --warmup-epochs 0 -r "$CKPT" --num_of_first_cls 80 --per_forget_cls 20 --num_tasks 4 --open_cls_num 5 -b 48 \
  --method gs_lora_pp --lr 1e-2 --lora_rank 8 --BND 105 --alpha 1e-4 --warmup_alpha --big_alpha 0.015 \
  --alpha_epoch 30 --cl_beta_list 0.14 0.14 0.2 0.15 --pro_f_weight 0.0003 --outdir results/cl_open/gs_lora_pp \
  --resume_run "$@"
