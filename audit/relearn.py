"""The relearn attack: does Acc_f come back after fine-tuning a copy (whole, or prompts only) on k images per forgotten
class? Far above the oracle's, the knowledge was hidden, not removed. Seeded throughout, so reproducible."""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from audit.prompts import PromptTokens, prompted
from audit.samples import per_class_sample
from data.folders import BatchLoader, Images, cycle, subset_indices
from data.subsets import seeded_generator
from data.task_plan import Task
from engine.evaluation import evaluate
from engine.settings import RunSettings
from util.device import autocast

BUDGETS = ("model", "prompt")


def fine_tune(model: nn.Module, params: list[nn.Parameter], images: Images, indices: torch.Tensor, steps: int,
              lr: float, batch: int, seed: int, tag: str, device: torch.device, amp: bool = False) -> None:
    """``steps`` AdamW steps of CE on the training logits (margin heads apply their margin) over seeded batches."""
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    batches = cycle(BatchLoader(images, indices, min(batch, len(indices)), shuffle=True, seed=seed, tag=tag))
    for _ in range(steps):
        x, y = (t.to(device) for t in next(batches))
        with autocast(device, amp):
            logits, _ = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(logits.float(), y).backward()
        optimizer.step()


def forget_accuracy(model: nn.Module, data, eval_idx: torch.Tensor, task: Task, settings: RunSettings) -> float:
    """Acc_f in the plain convention (argmax of the logits: what an attacker reads) over ``data.test[eval_idx]``."""
    counts = evaluate(model, data.test, eval_idx, settings.test_batch_size, settings.device, settings.amp)
    return counts.accuracy(task.forget, "plain")


def attack(model: nn.Module, budget: str, data, shots: torch.Tensor, eval_idx: torch.Tensor, task: Task,
           settings: RunSettings, tag: str) -> float:
    """Acc_f after fine-tuning a copy of ``model`` (unchanged) on ``data.train[shots]``, training ``budget``'s part."""
    cfg = settings.audit
    attacker = copy.deepcopy(model).eval()
    for p in attacker.parameters():
        p.requires_grad_(budget == "model")
    prompts = None if budget != "prompt" else PromptTokens(cfg.prompts, attacker.backbone.embed_dim,
                                                           seeded_generator(settings.seed, tag)).to(settings.device)
    params = list(prompts.parameters()) if prompts else list(attacker.parameters())
    with prompted(attacker.backbone, prompts):
        fine_tune(attacker, params, data.train, shots, cfg.steps, cfg.prompt_lr if prompts else cfg.lr, cfg.batch,
                  settings.seed, tag, settings.device, settings.amp)
        return forget_accuracy(attacker, data, eval_idx, task, settings)


def relearn_attacks(model: nn.Module, data, task: Task, eval_idx: torch.Tensor, settings: RunSettings
                    ) -> dict[str, object]:
    """{'before': Acc_f, budget: {str(k): Acc_f after its attack}}; smaller k's images are among larger k's."""
    pool = subset_indices(data.train, task.forget, data.train_idx)
    result: dict[str, object] = {"before": forget_accuracy(model, data, eval_idx, task, settings)}
    for budget in BUDGETS:
        result[budget] = {}
        for k in settings.audit.ks:
            shots = per_class_sample(pool, data.train.targets, k,
                                     seeded_generator(settings.seed, "audit", task.index, "relearn"))
            result[budget][str(k)] = attack(model, budget, data, shots, eval_idx, task, settings,
                                            f"audit-task{task.index}-{budget}-k{k}")
    return result
