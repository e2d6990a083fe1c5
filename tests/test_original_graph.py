"""The original's graph used as the benchmark's same-process reference: the sizes of reference/original-behaviour.md
1.1 and 1.5, and steps that train what the original trains."""
import torch

from benchmarks import original_graph


def test_paper_sizes_give_the_originals_parameter_counts():
    model = original_graph.FaceTransformer(112, 512, 2048)
    assert sum(p.numel() for p in model.parameters()) == 19_157_504  # reference 1.1, depth 6, 100 classes
    original_graph.add_lora(model, 8)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 245_760  # reference 1.5, rank 8


def tiny_batches():
    torch.manual_seed(0)
    images = torch.rand(8, 3, 16, 16)
    return (images[:4], torch.tensor([0, 1, 2, 3])), (images[4:], torch.tensor([4, 5, 6, 7]))


def test_gs_lora_pp_step_moves_only_the_lora_factors():
    model = original_graph.FaceTransformer(16, 32, 64, depth=2, heads=2, dim_head=16, patch_size=4, num_classes=10)
    step = original_graph.gs_lora_pp_step(model)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    step(*tiny_batches())
    moved = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert moved and all("lora_" in name for name in moved)


def test_fine_tuning_step_moves_the_backbone_and_not_the_head():
    model = original_graph.FaceTransformer(16, 32, 64, depth=2, heads=2, dim_head=16, patch_size=4, num_classes=10)
    step = original_graph.fine_tuning_step(model)
    head = model.head.detach().clone()
    qkv = model.layers[0][0].fn.to_qkv.weight.detach().clone()
    step(*tiny_batches())
    assert torch.equal(model.head, head) and not torch.equal(model.layers[0][0].fn.to_qkv.weight, qkv)
