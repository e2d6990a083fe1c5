"""Face Transformer: size, patch order, attention scale and the original checkpoint's key names (reference 1.1)."""
import pytest
import torch

from backbone.face_vit import Attention, FaceViT, convert_original_checkpoint, is_original_checkpoint
from model import build_model


@pytest.fixture(scope="module")
def vit100():
    torch.manual_seed(0)
    return build_model("VIT", "cosface", 100).eval()


def original_names(state_dict, depth):
    """Our state dict under the original repository's key names (reference 1.1), written out key by key."""
    ours_to_original = {
        "backbone.patch_embed.weight": "patch_to_embedding.weight",
        "backbone.patch_embed.bias": "patch_to_embedding.bias",
        "backbone.cls_token": "cls_token",
        "backbone.pos_embedding": "pos_embedding",
        "backbone.norm.weight": "mlp_head.0.weight",
        "backbone.norm.bias": "mlp_head.0.bias",
        "head.weight": "loss.weight",
    }
    for i in range(depth):
        ours, theirs = f"backbone.blocks.{i}", f"transformer.layers.{i}"
        for p in ("weight", "bias"):
            ours_to_original[f"{ours}.norm1.{p}"] = f"{theirs}.0.fn.norm.{p}"
            ours_to_original[f"{ours}.attn.proj.{p}"] = f"{theirs}.0.fn.fn.to_out.0.{p}"
            ours_to_original[f"{ours}.norm2.{p}"] = f"{theirs}.1.fn.norm.{p}"
            ours_to_original[f"{ours}.mlp.fc1.{p}"] = f"{theirs}.1.fn.fn.net.0.{p}"
            ours_to_original[f"{ours}.mlp.fc2.{p}"] = f"{theirs}.1.fn.fn.net.3.{p}"
        ours_to_original[f"{ours}.attn.qkv.weight"] = f"{theirs}.0.fn.fn.to_qkv.weight"
    assert set(ours_to_original) == set(state_dict), "the model has keys the reference list does not name"
    return {ours_to_original[k]: v.clone() for k, v in state_dict.items()}


def test_papers_model_with_100_class_cosface_has_19157504_parameters(vit100):
    assert sum(p.numel() for p in vit100.parameters()) == 19_157_504
    # Reference breakdown: per block 3,150,848; head 51,200.
    assert sum(p.numel() for p in vit100.backbone.blocks[0].parameters()) == 3_150_848
    assert vit100.head.weight.numel() == 100 * 512
    assert len(vit100.backbone.blocks) == 6


def test_forward_returns_logits_and_512_d_embedding(vit100):
    images = torch.rand(2, 3, 112, 112)
    with torch.no_grad():
        logits, emb = vit100(images)
        emb_only = vit100.backbone(images)
    assert logits.shape == (2, 100)
    assert emb.shape == (2, 512)
    torch.testing.assert_close(emb, emb_only)


def test_patchify_matches_rearrange_order_computed_by_indexing():
    p = 2
    model = FaceViT(image_size=4, patch_size=p, dim=8, depth=1, heads=1, dim_head=4, mlp_dim=8)
    images = torch.randn(2, 3, 4, 6)  # non-square, so a swapped h/w would show
    b, c, h, w = images.shape
    expected = torch.empty(b, (h // p) * (w // p), p * p * c)
    for bi in range(b):
        for hi in range(h // p):
            for wi in range(w // p):
                values = [images[bi, ci, hi * p + p1, wi * p + p2]
                          for p1 in range(p) for p2 in range(p) for ci in range(c)]
                expected[bi, hi * (w // p) + wi] = torch.stack(values)
    assert torch.equal(model.patchify(images), expected)


def test_attention_scales_by_model_width_not_head_width():
    torch.manual_seed(0)
    dim, heads, dim_head = 8, 2, 3  # attention width 6 differs from the model width 8
    attn = Attention(dim, heads, dim_head).eval()
    x = torch.randn(2, 5, dim)

    def manual(scale):
        qkv = x @ attn.qkv.weight.T
        inner = heads * dim_head
        q, k, v = (qkv[..., j * inner:(j + 1) * inner].reshape(2, 5, heads, dim_head).transpose(1, 2)
                   for j in range(3))
        weights = torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(2, 5, inner)
        return out @ attn.proj.weight.T + attn.proj.bias

    with torch.no_grad():
        got = attn(x)
        torch.testing.assert_close(got, manual(dim ** -0.5), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(got, manual(dim_head ** -0.5), atol=1e-4)


def test_original_checkpoint_keys_convert_and_reproduce_outputs():
    torch.manual_seed(0)
    source = build_model("vit_face_tiny", "cosface", 5).eval()
    original = original_names(source.state_dict(), depth=2)
    for i in range(2):  # the original also stores its (already merged) LoRA factors
        for j in (0, 3):
            original[f"transformer.layers.{i}.1.fn.fn.net.{j}.lora_A"] = torch.randn(4, 8)
            original[f"transformer.layers.{i}.1.fn.fn.net.{j}.lora_B"] = torch.randn(8, 4)
    assert is_original_checkpoint(original)

    converted = convert_original_checkpoint(original)
    assert not any("lora_" in k for k in converted)
    assert set(converted) == set(source.state_dict())

    torch.manual_seed(1)
    target = build_model("vit_face_tiny", "cosface", 5).eval()
    target.load_state_dict(converted, strict=True)
    images, labels = torch.rand(3, 3, 16, 16), torch.tensor([0, 2, 4])
    with torch.no_grad():
        expected, _ = source(images, labels)
        got, _ = target(images, labels)
    torch.testing.assert_close(got, expected)


def test_conversion_strips_data_parallel_prefix():
    original = {"module.patch_to_embedding.weight": torch.ones(2), "module.loss.weight": torch.zeros(2)}
    assert set(convert_original_checkpoint(original)) == {"backbone.patch_embed.weight", "head.weight"}


def test_bf16_cpu_attention_matches_the_formula():
    """The bf16 CPU path (plain batched products) against softmax(q k^T * s) v worked out in float64."""
    from backbone.face_vit import attention
    torch.manual_seed(0)
    b, n, heads, dim_head, scale = 3, 7, 2, 4, 0.3
    qkv = torch.randn(b, n, 3, heads, dim_head)
    q, k, v = qkv.double().permute(2, 0, 3, 1, 4)
    expected = (torch.softmax(q @ k.transpose(-1, -2) * scale, -1) @ v).transpose(1, 2).reshape(b, n, -1)
    got = attention(qkv.bfloat16(), scale)
    assert got.dtype == torch.bfloat16 and got.shape == (b, n, heads * dim_head)
    torch.testing.assert_close(got.double(), expected, rtol=0.02, atol=0.02)
    torch.testing.assert_close(attention(qkv, scale).double(), expected, rtol=1e-5, atol=1e-6)
