"""The relearn attack (audit/relearn.py), its prompt tokens (audit/prompts.py) and the per-class samples
(audit/samples.py): prompts lengthen the token sequence only inside their block, only they get gradients, the attack
never changes the audited model, is reproducible, and the whole-model attacker restores a class hidden at the head."""
import copy

import torch
from conftest import tiny_settings, tiny_tasks

from audit.prompts import PromptTokens, prompted
from audit.relearn import attack, fine_tune, forget_accuracy
from audit.samples import per_class_sample
from audit.settings import AuditSettings
from data.folders import subset_indices


def first_block_lengths(model):
    lengths = []
    model.backbone.blocks[0].register_forward_hook(lambda module, args, out: lengths.append(args[0].shape[1]))
    return lengths


def test_prompts_lengthen_the_sequence_only_inside_their_block(pretrained_model, tiny_data):
    model = pretrained_model.eval()
    images = tiny_data.test.images[:4].float() / 255
    lengths = first_block_lengths(model)
    plain = model.backbone(images)
    prompts = PromptTokens(3, model.backbone.embed_dim, torch.Generator().manual_seed(0))
    with prompted(model.backbone, prompts):
        inside = model.backbone(images)
    after = model.backbone(images)
    tokens = (16 // 4) ** 2 + 1  # patches of the tiny 16 px model plus the class token
    assert lengths == [tokens, tokens + 3, tokens]
    assert not torch.allclose(plain, inside) and torch.equal(plain, after)


def test_only_the_prompts_get_gradients_and_the_frozen_weights_stay(pretrained_model, tiny_data, tmp_path,
                                                                     monkeypatch):
    task = tiny_tasks(1)[0]
    settings = tiny_settings(tmp_path)
    settings.audit = AuditSettings(steps=3, prompts=2, batch=8)
    seen = {}

    def spy(attacker, params, *args, **kwargs):
        """Checks the prompt-only attacker's copy around the real fine-tuning."""
        weights = copy.deepcopy(attacker.state_dict())
        start = [p.detach().clone() for p in params]
        with torch.enable_grad():
            logits, _ = attacker(tiny_data.train.images[:8].float() / 255, tiny_data.train.targets[:8])
            torch.nn.functional.cross_entropy(logits, tiny_data.train.targets[:8]).backward()
        seen["grads"] = [p.grad is not None and p.grad.abs().sum() > 0 for p in params]
        seen["frozen_grads"] = [p.grad for p in attacker.parameters()]
        fine_tune(attacker, params, *args, **kwargs)
        seen["shapes"] = [tuple(p.shape) for p in params]
        seen["weights_kept"] = all(torch.equal(weights[k], v) for k, v in attacker.state_dict().items())
        seen["prompts_moved"] = not torch.equal(start[0], params[0].detach())

    monkeypatch.setattr("audit.relearn.fine_tune", spy)
    attack(pretrained_model, "prompt", tiny_data, torch.arange(16), torch.arange(8), task, settings, "t")
    assert seen["shapes"] == [(1, 2, pretrained_model.backbone.embed_dim)]  # the optimizer holds the tokens only
    assert seen["grads"] == [True] and all(g is None for g in seen["frozen_grads"])
    assert seen["weights_kept"] and seen["prompts_moved"]


def hidden_at_the_head(model, classes):
    """A copy whose head rows of ``classes`` point the other way: those classes are never predicted."""
    hidden = copy.deepcopy(model)
    with torch.no_grad():
        hidden.head.weight[classes] *= -1
    return hidden


def test_attacks_leave_the_model_alone_repeat_exactly_and_restore_a_hidden_class(pretrained_model, tiny_data,
                                                                                 tmp_path):
    task = tiny_tasks(1)[0]
    settings = tiny_settings(tmp_path)
    settings.audit = AuditSettings(steps=20, lr=1e-2, prompts=2, batch=16)
    model = hidden_at_the_head(pretrained_model, task.forget)
    eval_idx = subset_indices(tiny_data.test, task.forget)
    shots = per_class_sample(subset_indices(tiny_data.train, task.forget, tiny_data.train_idx),
                             tiny_data.train.targets, 10, torch.Generator().manual_seed(0))
    weights = copy.deepcopy(model.state_dict())
    before = forget_accuracy(model, tiny_data, eval_idx, task, settings)
    recovered = {budget: attack(model, budget, tiny_data, shots, eval_idx, task, settings, f"t-{budget}")
                 for budget in ("model", "prompt")}
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert before == 0.0 and recovered["model"] > 50.0
    assert attack(model, "prompt", tiny_data, shots, eval_idx, task, settings, "t-prompt") == recovered["prompt"]


def test_per_class_samples_are_capped_in_class_order_nested_and_seeded():
    targets = torch.tensor([2, 0, 1] * 10 + [3])  # ten images of classes 0-2, one of class 3
    indices = torch.arange(len(targets))

    def sample(cap, seed=3):
        return per_class_sample(indices, targets, cap, torch.Generator().manual_seed(seed))

    small, large = sample(2), sample(3)
    assert targets[small].tolist() == [0, 0, 1, 1, 2, 2, 3]
    assert targets[large].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert all(set(small[targets[small] == c].tolist()) <= set(large[targets[large] == c].tolist()) for c in range(3))
    assert torch.equal(sample(3), large) and not torch.equal(sample(3, seed=4), large)
