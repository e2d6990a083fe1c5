"""The images an audit looks at, a few per class (an audit takes seconds on the CPU) drawn by a seeded generator per set
(the same model and task always give the same images), and the model's outputs on them."""
import torch
import torch.nn as nn

from data.folders import BatchLoader, Images
from util.device import autocast, in_eval_mode


def per_class_sample(indices: torch.Tensor, targets: torch.Tensor, cap: int, generator: torch.Generator
                     ) -> torch.Tensor:
    """Up to ``cap`` of ``indices`` per class, the first of a seeded permutation each: growing caps give nested sets."""
    labels = targets[indices]
    chosen = [indices[labels == c][torch.randperm(int((labels == c).sum()), generator=generator)[:cap]]
              for c in labels.unique().tolist()]
    return torch.cat(chosen) if chosen else indices[:0]


@torch.no_grad()
@in_eval_mode
def model_outputs(model: nn.Module, images: Images, indices: torch.Tensor, batch_size: int, device: torch.device,
                  amp: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Plain logits (N, C), embeddings (N, D) and labels (N,) of ``images[indices]``, in eval mode, on the CPU."""
    logits, embeddings, labels = [], [], []
    for batch, target in BatchLoader(images, indices, batch_size):
        with autocast(device, amp):
            emb = model.backbone(batch.to(device))
            logits.append(model.head.plain_logits(emb).float().cpu())
        embeddings.append(emb.float().cpu())
        labels.append(target)
    return torch.cat(logits), torch.cat(embeddings), torch.cat(labels)
