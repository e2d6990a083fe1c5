"""All audits of one model and task (a task's "audit" in results.json), after each task (``--audit``) and for finished
runs (finished.py): both audit a fresh model built from the merged weights, so they agree and leave the run's alone."""
import copy
import json
import logging
import time
import zlib
from pathlib import Path

import torch
import torch.nn as nn

from audit.membership import attack_features, classifier_attack, loss_threshold_attack
from audit.oracle import oracle_audit, with_oracle
from audit.probe import knn_accuracy
from audit.relearn import relearn_attacks
from audit.samples import model_outputs, per_class_sample
from audit.settings import FAR
from audit.verification import verification
from backbone.lora import without_lora
from data.folders import subset_indices
from data.subsets import seeded_generator
from data.task_plan import Task
from engine.settings import RunSettings
from model import build_model, load_model_weights
from util.checkpoint import load_checkpoint

log = logging.getLogger(__name__)

# Audits of saved checkpoints made in this process, by (file, task, settings, subsets): see audit_checkpoint.
_CHECKPOINT_AUDITS: dict[tuple[str, int, str, int], dict[str, object]] = {}


def audit_sets(data, task: Task, remain_idx: torch.Tensor, forget_idx: torch.Tensor, settings: RunSettings):
    """{name: (images, indices)}, each capped per class: members (the remain subset; with --no_retain the remain
    classes' training split, which pre-training saw), non_members (their test images), forget_train, forget_test."""
    members = remain_idx if len(remain_idx) else subset_indices(data.train, task.remain, data.train_idx)
    pools = {"members": (data.train, members), "non_members": (data.test, subset_indices(data.test, task.remain)),
             "forget_train": (data.train, forget_idx),
             "forget_test": (data.test, subset_indices(data.test, task.forget))}
    return {name: (images, per_class_sample(idx, images.targets, settings.audit.images,
                                            seeded_generator(settings.seed, "audit", task.index, name)))
            for name, (images, idx) in pools.items()}


def audit_model(model: nn.Module, data, task: Task, remain_idx: torch.Tensor, forget_idx: torch.Tensor,
                settings: RunSettings) -> dict[str, object]:
    """Membership inference, the embedding probe, verification and the relearn attacks of ``model`` (percent)."""
    sets = audit_sets(data, task, remain_idx, forget_idx, settings)
    out = {name: model_outputs(model, images, idx, settings.test_batch_size, settings.device, settings.amp)
           for name, (images, idx) in sets.items()}
    attacked = [attack_features(out[name][0], out[name][2]) for name in ("members", "non_members", "forget_train")]
    fit = [torch.cat([out["members"][i], out["forget_train"][i]]) for i in (1, 2)]  # embeddings, labels
    return {"membership": {"classifier": classifier_attack(*attacked),  # the loss is the third feature
                           "loss_threshold": loss_threshold_attack(*(f[:, 2] for f in attacked))},
            "probe": {"acc_f": knn_accuracy(*fit, *out["forget_test"][1:]),
                      "acc_r": knn_accuracy(*fit, *out["non_members"][1:])},
            "verification": {"forget": verification(*out["forget_test"][1:], FAR),
                             "retain": verification(*out["non_members"][1:], FAR)},
            "relearn": relearn_attacks(model, data, task, sets["forget_test"][1], settings)}


def audit_weights(state: dict[str, torch.Tensor], model_args: dict, data, task: Task, remain_idx: torch.Tensor,
                  forget_idx: torch.Tensor, settings: RunSettings) -> dict[str, object]:
    """The audit of merged weights ``state``, loaded into a fresh model, with its settings and its time (s)."""
    start = time.perf_counter()
    model = build_model(**model_args)
    load_model_weights(model, state, "audited weights")
    result = audit_model(model.to(settings.device), data, task, remain_idx, forget_idx, settings)
    return {"settings": settings.audit.record(settings.seed), **result, "seconds": time.perf_counter() - start}


def audit_checkpoint(path: Path, data, task: Task, remain_idx: torch.Tensor, forget_idx: torch.Tensor,
                     settings: RunSettings) -> dict[str, object]:
    """The audit of a saved task checkpoint, once per process (an oracle shared by several audited runs costs one)."""
    key = (str(Path(path).resolve()), task.index, json.dumps(settings.audit.record(settings.seed), sort_keys=True),
           zlib.crc32(remain_idx.numpy().tobytes() + b"|" + forget_idx.numpy().tobytes()))
    if key not in _CHECKPOINT_AUDITS:
        checkpoint = load_checkpoint(path)
        _CHECKPOINT_AUDITS[key] = audit_weights(checkpoint["model"], checkpoint.get("model_args", settings.model_args),
                                                data, task, remain_idx, forget_idx, settings)
    return copy.deepcopy(_CHECKPOINT_AUDITS[key])


def attach_oracle(audit: dict, data, task: Task, remain_idx: torch.Tensor, forget_idx: torch.Tensor,
                  settings: RunSettings) -> dict[str, object]:
    """``audit`` with the ``--audit_oracle`` run's numbers and gaps (neither without one, nor in the oracle's own)."""
    oracle_dir = Path(settings.audit.oracle or settings.outdir)
    if oracle_dir.resolve() == Path(settings.outdir).resolve():
        return with_oracle(audit, None, oracle_dir)
    oracle = oracle_audit(oracle_dir, task, audit["settings"], settings.config,
                          lambda path: audit_checkpoint(path, data, task, remain_idx, forget_idx, settings))
    return with_oracle(audit, oracle, oracle_dir)


def audit_task(model: nn.Module, data, task: Task, remain_idx: torch.Tensor, forget_idx: torch.Tensor,
               settings: RunSettings) -> dict[str, object]:
    """The audit of a task's final model (its merged weights, as saved), with the oracle's when one is named."""
    audit = audit_weights(without_lora(model.state_dict()), settings.model_args, data, task, remain_idx, forget_idx,
                          settings)
    log.info("task %d: audit in %.1f s", task.index, audit["seconds"])
    return attach_oracle(audit, data, task, remain_idx, forget_idx, settings)
