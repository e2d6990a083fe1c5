# Settings shared by quickstart.sh and compare.sh (sourced): the CPU-sized model, its pre-training and the
# 4-task protocol on the built-in synthetic faces. A softmax head, because a CosFace head (s 64, m 0.35) needs
# hundreds of epochs from scratch before its margin accuracy is useful; the paper's scripts use CosFace.
PRETRAINED=runs/quickstart/pretrain/best.pth
PRETRAIN=(-d synthetic -n vit_face_small -head softmax -e 15 -b 64 --lr 1e-3 --warmup-epochs 1)
PROTOCOL=(-d synthetic -r "$PRETRAINED" --num_of_first_cls 80 --per_forget_cls 20 --num_tasks 4
          -e 10 -b 48 --warmup-epochs 0 --data_ratio 0.2 --eval_every 20)
GS_LORA=(--lr 1e-2 --lora_rank 8 --BND 30 --cl_beta_list 0.2 0.2 0.2 0.2 --alpha 1e-3)
GS_LORA_PP=("${GS_LORA[@]}" --pro_f_weight 0.01 --BND_pro 18)

pretrain_if_missing() {
  [ -f "$PRETRAINED" ] || python train_own.py "${PRETRAIN[@]}" --outdir "$(dirname "$PRETRAINED")"
}
