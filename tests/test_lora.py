"""LoRA on the FFN linears: trainable count, init, explicit merging, per-block groups (reference 1.5, 1.6)."""
import math

import pytest
import torch

from backbone.lora import (
    LoRALinear,
    inject_lora,
    lora_groups,
    lora_layers,
    mark_only_lora_trainable,
    merge_lora,
    without_lora,
)
from model import build_model


def tiny_lora_model(rank=4, seed=0):
    torch.manual_seed(seed)
    model = build_model("vit_face_tiny", "cosface", 4)
    inject_lora(model.backbone, rank)
    return model


def randomise_b(model, seed=1):
    """What training does to a fresh LoRA: B moves away from zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model):
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=gen) * 0.5)


@pytest.fixture
def images():
    return torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))


def test_rank_8_on_the_papers_model_trains_245760_parameters_or_1_28_percent():
    torch.manual_seed(0)
    model = build_model("VIT", "cosface", 100)
    inject_lora(model.backbone, rank=8)
    mark_only_lora_trainable(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    base = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    per_block = 8 * 512 + 2048 * 8 + 8 * 2048 + 512 * 8  # fc1 A, B and fc2 A, B
    assert trainable == 6 * per_block == 245_760
    assert base == 19_157_504
    assert f"{100 * trainable / base:.2f}" == "1.28"
    assert all(("lora_" in n) == p.requires_grad for n, p in model.named_parameters())


def test_fresh_lora_leaves_outputs_unchanged(images):
    torch.manual_seed(0)
    plain = build_model("vit_face_tiny", "cosface", 4).eval()
    with torch.no_grad():
        expected = plain.backbone(images)
    inject_lora(plain.backbone, rank=4)
    assert len(lora_layers(plain)) == 4  # 2 blocks x (fc1, fc2)
    with torch.no_grad():
        torch.testing.assert_close(plain.backbone(images), expected)


def test_merge_returns_scaled_b_times_a_and_keeps_outputs(images):
    model = tiny_lora_model(rank=4).eval()
    randomise_b(model)
    layer = model.backbone.blocks[0].mlp.fc1
    a, b, w = layer.lora_A.detach().clone(), layer.lora_B.detach().clone(), layer.weight.detach().clone()
    expected_delta = torch.einsum("or,ri->oi", b, a) * (1.0 / 4)  # alpha 1 / rank 4
    with torch.no_grad():
        unmerged = model.backbone(images)
    deltas = merge_lora(model)
    torch.testing.assert_close(deltas["backbone.blocks.0.mlp.fc1.weight"], expected_delta)
    torch.testing.assert_close(layer.weight.detach(), w + expected_delta)
    assert torch.count_nonzero(layer.lora_B) == 0
    with torch.no_grad():
        torch.testing.assert_close(model.backbone(images), unmerged, rtol=1e-5, atol=1e-5)


def test_train_and_eval_never_merge(images):
    model = tiny_lora_model().eval()
    randomise_b(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        out = model.backbone(images)
    model.train()
    model.eval()
    model.train()
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    with torch.no_grad():  # vit_face_tiny has no dropout: the mode changes nothing in the forward
        torch.testing.assert_close(model.backbone(images), out)


def test_groups_are_one_per_block_with_its_four_matrices():
    model = tiny_lora_model()
    groups = lora_groups(model.backbone)
    assert len(groups) == len(model.backbone.blocks) == 2
    for block, group in zip(model.backbone.blocks, groups):
        fc1, fc2 = block.mlp.fc1, block.mlp.fc2
        assert {id(p) for p in group} == {id(fc1.lora_A), id(fc1.lora_B), id(fc2.lora_A), id(fc2.lora_B)}
        assert len(group) == 4


def test_without_lora_state_dict_reproduces_the_model_without_double_application(images):
    model = tiny_lora_model().eval()
    randomise_b(model)
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        with_lora = model.backbone(images)
    merge_lora(model)
    state = without_lora(model.state_dict())
    assert not any("lora_" in k for k in state)

    torch.manual_seed(5)
    plain = build_model("vit_face_tiny", "cosface", 4).eval()
    plain.load_state_dict(state, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(plain.backbone(images), with_lora, rtol=1e-5, atol=1e-5)

    # What the original did: merged weights plus the trained factors apply the update twice.
    doubled = tiny_lora_model(seed=6).eval()
    doubled.load_state_dict({**trained, **state})
    with torch.no_grad():
        assert not torch.allclose(doubled.backbone(images), with_lora, atol=1e-3)


def test_lora_a_init_bound_is_one_over_sqrt_fan_in():
    torch.manual_seed(0)
    layer = LoRALinear(2048, 8, rank=64)
    bound = 1 / math.sqrt(2048)
    assert layer.lora_A.abs().max() <= bound
    assert layer.lora_A.abs().max() > 0.99 * bound  # 131k uniform draws reach the edge
    assert torch.count_nonzero(layer.lora_B) == 0
    layer.reset_lora(a=math.sqrt(50))  # the later tasks' re-initialisation
    assert layer.lora_A.abs().max() <= math.sqrt(6 / 51) / math.sqrt(2048)


def test_lora_layer_freezes_base_weight_and_bias():
    layer = LoRALinear.from_linear(torch.nn.Linear(6, 3), rank=2)
    assert not layer.weight.requires_grad and not layer.bias.requires_grad
    assert layer.lora_A.requires_grad and layer.lora_B.requires_grad
    with pytest.raises(ValueError):
        LoRALinear(6, 3, rank=0)


def test_lora_linear_computes_w_x_plus_b_plus_scaled_b_a_x_on_token_sequences():
    torch.manual_seed(0)
    layer = LoRALinear(5, 3, rank=2, alpha=4.0)  # scaling 2
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(2, 4, 5, requires_grad=True)
    w, b, a, bb = (t.detach() for t in (layer.weight, layer.bias, layer.lora_A, layer.lora_B))
    expected = x.detach() @ w.T + b + 2.0 * (x.detach() @ a.T) @ bb.T
    out = layer(x)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    ones = torch.ones(8, 3)
    flat = x.detach().reshape(8, 5)
    torch.testing.assert_close(layer.lora_B.grad, 2.0 * ones.T @ (flat @ a.T))
    torch.testing.assert_close(layer.lora_A.grad, 2.0 * (ones @ bb).T @ flat)
    torch.testing.assert_close(x.grad, (ones @ (w + 2.0 * bb @ a)).reshape(2, 4, 5))


def test_evaluation_without_gradients_gives_the_training_path_output():
    torch.manual_seed(0)
    layer = LoRALinear(6, 4, rank=2, alpha=2.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(3, 5, 6)
    with_grad = layer(x)
    assert with_grad.requires_grad
    with torch.no_grad():
        folded = layer(x)
    torch.testing.assert_close(folded, with_grad.detach())
    merged = (layer.weight + layer.lora_B @ layer.lora_A).detach()
    torch.testing.assert_close(folded, x @ merged.T + layer.bias.detach())


def test_hand_written_backward_matches_numerical_gradients():
    from backbone.lora import _LoRAProduct
    gen = torch.Generator().manual_seed(0)
    x, w, b, a, bb = (torch.randn(*shape, dtype=torch.float64, generator=gen, requires_grad=grad)
                      for shape, grad in (((2, 3, 5), True), ((4, 5), False), ((4,), False), ((2, 5), True),
                                          ((4, 2), True)))
    assert torch.autograd.gradcheck(lambda *t: _LoRAProduct.apply(*t, 0.7), (x, w, b, a, bb))


def test_bf16_autocast_training_path_runs_in_bf16_and_trains_the_fp32_factors():
    torch.manual_seed(0)
    layer = LoRALinear(6, 4, rank=2)
    x = torch.randn(3, 5, 6)
    with torch.autocast("cpu", torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert layer.lora_A.grad.dtype == torch.float32 and layer.weight.grad is None
    torch.testing.assert_close(out.float(), x @ layer.weight.detach().T + layer.bias.detach(), rtol=0.02, atol=0.02)


def test_an_unfrozen_base_weight_still_gets_its_gradient():
    torch.manual_seed(0)
    layer = LoRALinear(6, 4, rank=2)
    layer.weight.requires_grad_(True)
    x = torch.randn(3, 6)
    layer(x).sum().backward()
    torch.testing.assert_close(layer.weight.grad, torch.ones(3, 4).T @ x)
    assert layer.lora_A.grad is not None
