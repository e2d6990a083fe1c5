"""Supervised pre-training of a backbone and head on all classes (train_own.py), with validation-split selection."""
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from data.folders import BatchLoader
from engine.evaluation import evaluate, test_report
from engine.optim import create_optimizer_and_scheduler
from engine.settings import RunSettings
from model import load_model_weights
from util.checkpoint import load_checkpoint, save_checkpoint
from util.device import autocast
from util.distributed import (all_reduce_sum, average_gradients, broadcast_from_main, is_main_process, progress_off,
                              seed_per_process, shard)
from util.errors import check_finite


def train_supervised_epoch(model: nn.Module, loader: BatchLoader, optimizer: torch.optim.Optimizer,
                           device: torch.device, amp: bool, where: str) -> dict[str, float]:
    """One epoch of cross-entropy on margin logits; returns the mean loss and training accuracy."""
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast(device, amp):
            logits, _ = model(images, labels)
        loss = F.cross_entropy(logits.float(), labels)
        check_finite({"ce": loss}, where)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(model.parameters())  # torchrun: every process takes the same step
        optimizer.step()
        loss_sum += float(loss.detach()) * len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
    # Under torchrun each process saw its part of the epoch; the sums over the processes are the epoch's.
    loss_sum, correct, seen = all_reduce_sum(torch.tensor([loss_sum, correct, seen], dtype=torch.float64)).tolist()
    return {"loss": loss_sum / seen, "train_acc": 100.0 * correct / seen}


def pretrain(model: nn.Module, data, settings: RunSettings, run_log, checkpoint_path: Path,
             task: int | None = None) -> dict[str, object]:
    """Supervised training keeping the best validation epoch (original convention); returns it, steps, test report."""
    broadcast_from_main(model.state_dict().values())  # every process starts from the same weights
    seed_per_process()
    epochs = settings.optim.epochs
    optimizer, scheduler = create_optimizer_and_scheduler(model.parameters(), settings.optim, epochs)
    loader = BatchLoader(data.train, data.train_idx, settings.batch_size, shuffle=True, seed=settings.seed,
                         tag="pretrain", shard=shard())
    every_class = range(data.num_classes)
    best = {"val_acc": -1.0}
    prefix = "pretrain" if task is None else f"task{task}/pretrain"
    for epoch in tqdm(range(epochs), desc="pre-training", unit="epoch", disable=progress_off()):
        scheduler.step(epoch)
        stats = train_supervised_epoch(model, loader, optimizer, settings.device, settings.amp, f"epoch {epoch}")
        val = evaluate(model, data.train, data.val_idx, settings.test_batch_size, settings.device, settings.amp)
        val_acc = val.accuracy(every_class)
        run_log.write(prefix, epoch, {**stats, "val_acc": val_acc, "lr": optimizer.param_groups[0]["lr"],
                                      "val_acc_plain": val.accuracy(every_class, "plain")}, task=task)
        if val_acc > best["val_acc"]:
            best = {"epoch": epoch, "val_acc": val_acc}
            if is_main_process():
                save_checkpoint(checkpoint_path, model=model.state_dict(), model_args=settings.model_args,
                                config=settings.config, epoch=epoch)
    if is_main_process():
        load_model_weights(model, load_checkpoint(checkpoint_path)["model"])
    broadcast_from_main(model.state_dict().values())  # the selected weights, without reading the main's file
    return {**best, "optimizer_steps": epochs * len(loader),
            **test_report(model, data.test, settings.test_batch_size, settings.device, settings.amp)}
