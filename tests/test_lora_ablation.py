"""The papers' ablation switches: LoRA on the attention's qkv projection (--lora_pos Attention, loralib's MergedLinear
with one rank-r update each for q, k and v) and the group lasso grouped per block, per LoRA layer or per matrix
(--grouping), against values worked out by hand (reference 1.5, 1.6)."""
import json
import math

import numpy as np
import pytest
import torch
from conftest import tiny_settings, tiny_tasks

from backbone.face_vit import Attention
from backbone.lora import LoRALinear, inject_lora, lora_groups, lora_layers, low_rank_update, mark_only_lora_trainable
from engine import undo
from engine.forgetting import run_forgetting
from gs_lora import GSLoRA, group_lasso
from model import build_model
from util.checkpoint import load_checkpoint, load_file
from util.errors import UserError
from util.run_log import RunLog


def qkv_factors(seed=0, rank=2, inner=4, dim=5):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(3 * rank, dim, generator=gen), torch.randn(3 * inner, rank, generator=gen)


def test_the_qkv_update_gives_q_k_and_v_each_their_own_rank_r_product():
    a, b = qkv_factors()
    delta = low_rank_update(a, b, 0.5).numpy()
    a64, b64 = a.double().numpy(), b.double().numpy()
    for part in range(3):  # output rows 4*part ... get B's same rows times A's rows 2*part, 2*part + 1
        expected = 0.5 * b64[4 * part:4 * part + 4] @ a64[2 * part:2 * part + 2]
        np.testing.assert_allclose(delta[4 * part:4 * part + 4], expected, rtol=1e-5, atol=1e-6)
    # Not one rank-2r product: the off-diagonal blocks (q's rows with k's A rows ...) are left out.
    assert not np.allclose(delta, 0.5 * b64 @ a64[:2], atol=1e-3)


def test_a_qkv_lora_layer_trains_every_part_and_its_eval_path_gives_the_training_output():
    torch.manual_seed(0)
    layer = LoRALinear(5, 12, rank=2, bias=False, parts=3)
    a, b = qkv_factors()
    with torch.no_grad():
        layer.lora_A.copy_(a)
        layer.lora_B.copy_(b)
    x = torch.randn(3, 7, 5)
    out = layer(x)
    expected = x.double().numpy() @ (layer.weight.detach().double().numpy() + low_rank_update(a, b, 0.5).double()
                                     .numpy()).T
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-5, atol=1e-5)
    out.pow(2).sum().backward()
    assert layer.weight.grad is None
    assert all(layer.lora_A.grad[2 * p:2 * p + 2].abs().sum() > 0 for p in range(3))
    with torch.no_grad():
        torch.testing.assert_close(layer(x), out.detach(), rtol=1e-5, atol=1e-5)


def test_attention_lora_on_the_papers_model_trains_147456_parameters_and_leaves_the_ffn_alone():
    torch.manual_seed(0)
    model = build_model("VIT", "cosface", 100)
    inject_lora(model.backbone, rank=8, position="Attention")
    mark_only_lora_trainable(model)
    per_block = 3 * 8 * 512 + 1536 * 8  # MergedLinear: A (3r, 512), B (1536, r)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 6 * per_block == 147_456
    assert all(isinstance(block.attn.qkv, LoRALinear) and block.attn.qkv.parts == 3 for block in model.backbone.blocks)
    assert not any(isinstance(m, LoRALinear) for block in model.backbone.blocks for m in block.mlp.modules())


def test_a_fresh_attention_lora_leaves_outputs_unchanged():
    torch.manual_seed(0)
    model = build_model("vit_face_tiny", "cosface", 4).eval()
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model.backbone(images)
        inject_lora(model.backbone, rank=4, position="Attention")
        torch.testing.assert_close(model.backbone(images), before)


def norm(*tensors):
    return math.sqrt(sum(float((t.detach().double().numpy() ** 2).sum()) for t in tensors))


@pytest.mark.parametrize("position", ["FFN", "Attention"])
def test_each_grouping_sums_the_l2_norms_of_its_groups(position):
    torch.manual_seed(0)
    model = build_model("vit_face_tiny", "cosface", 4)
    inject_lora(model.backbone, rank=3, position=position)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for layer in lora_layers(model):
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=gen))
    blocks = [lora_layers(block) for block in model.backbone.blocks]
    by_block = sum(norm(*[p for layer in block for p in (layer.lora_A, layer.lora_B)]) for block in blocks)
    by_layer = sum(norm(layer.lora_A, layer.lora_B) for block in blocks for layer in block)
    by_matrix = sum(norm(p) for block in blocks for layer in block for p in (layer.lora_A, layer.lora_B))
    layers_per_block = 2 if position == "FFN" else 1
    depth = len(blocks)
    for grouping, expected, count in (("block", by_block, depth), ("lora", by_layer, layers_per_block * depth),
                                      ("matrix", by_matrix, 2 * layers_per_block * depth)):
        groups = lora_groups(model.backbone, grouping)
        assert len(groups) == count
        assert group_lasso(groups).item() == pytest.approx(expected, rel=1e-5), grouping
    if position == "FFN":  # four matrices per block: the three groupings give three different sums
        assert by_block < by_layer < by_matrix


def test_attention_lora_on_a_backbone_without_a_qkv_linear_is_one_user_error():
    model = build_model("vit_tv_tiny", "softmax", 4)
    with pytest.raises(UserError, match="--lora_pos Attention: no attention with a qkv linear"):
        GSLoRA(model, rank=2, lora_pos="Attention")


def test_a_run_with_attention_lora_and_matrix_groups_changes_only_qkv_and_undoes_exactly(tiny_data, pretrained_state,
                                                                                         tmp_path):
    model = build_model("vit_face_tiny", "cosface", 8)
    model.load_state_dict(pretrained_state)
    method = GSLoRA(model, rank=4, bound=15.0, beta=0.5, alpha=1e-3, lora_pos="Attention", grouping="matrix")
    run_forgetting(method, tiny_data, tiny_tasks(1), tiny_settings(tmp_path, epochs=3), RunLog(None))
    results = json.loads((tmp_path / "results.json").read_text())
    depth = len(model.backbone.blocks)
    assert len(results["tasks"][0]["group_norms"]) == 2 * depth  # one A and one B per block
    after = load_checkpoint(tmp_path / "task-level" / "Backbone_task_0.pth")["model"]
    changed = sorted(k for k, v in pretrained_state.items() if not torch.equal(v, after[k]))
    assert changed == [f"backbone.blocks.{i}.attn.qkv.weight" for i in range(depth)]
    delta = load_file(undo.delta_path(tmp_path, 0))
    restored = undo.subtract_update(after, undo.lora_update(delta["factors"], float(delta["scaling"])))
    for key, value in pretrained_state.items():
        torch.testing.assert_close(restored[key], value, rtol=0, atol=1e-6, msg=key)
    assert isinstance(model.backbone.blocks[0].attn, Attention)


def test_an_all_zero_group_has_norm_zero_and_gradient_zero_not_nan():
    """A fresh B is its own group under --grouping matrix: the lasso's subgradient at zero is 0, as torch.norm's."""
    a = torch.tensor([[3.0, -4.0]], requires_grad=True)
    b = torch.zeros(2, 1, requires_grad=True)
    total = group_lasso([[a], [b]])
    total.backward()
    assert total.item() == 5.0
    assert a.grad.tolist() == [[pytest.approx(0.6), pytest.approx(-0.8)]]
    assert b.grad.tolist() == [[0.0], [0.0]]
