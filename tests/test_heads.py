"""Margin heads (reference 1.2): CosFace and ArcFace logits by hand, the two accuracy conventions, devices."""
import math

import pytest
import torch

from head.linear import LinearHead
from head.margin import ArcFace, CosFace
from util.metrics import count_correct

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


def head_with_weight(cls, rows, **kw):
    head = cls(embed_dim=len(rows[0]), num_classes=len(rows), **kw)
    with torch.no_grad():
        head.weight.copy_(torch.tensor(rows))
    return head


def test_cosface_subtracts_the_margin_from_the_target_cosine_only():
    head = head_with_weight(CosFace, [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])  # rows need not be unit length
    emb = torch.tensor([[3.0, 4.0], [0.0, -1.0]])  # unit directions (0.6, 0.8) and (0, -1)
    labels = torch.tensor([0, 2])
    s, m = 64.0, 0.35
    r = 1 / math.sqrt(2)
    cos = [[0.6, 0.8, 1.4 * r], [0.0, -1.0, -r]]
    expected = torch.tensor([[s * (cos[0][0] - m), s * cos[0][1], s * cos[0][2]],
                             [s * cos[1][0], s * cos[1][1], s * (cos[1][2] - m)]])
    torch.testing.assert_close(head(emb, labels), expected)
    torch.testing.assert_close(head(emb), torch.tensor(cos) * s)


def test_arcface_adds_the_angle_margin_and_falls_back_past_pi():
    s, m = 64.0, 0.5
    head = head_with_weight(ArcFace, [[1.0, 0.0], [0.0, 1.0]])
    theta_small = 1.0  # theta + m < pi
    cos_far = -0.95  # theta = 2.82 rad: theta + m > pi, so the fallback applies
    emb = torch.tensor([[math.cos(theta_small), math.sin(theta_small)],
                        [cos_far, math.sqrt(1 - cos_far ** 2)]])
    logits = head(emb, torch.tensor([0, 0])).detach()
    assert math.isclose(float(logits[0, 0]), s * math.cos(theta_small + m), rel_tol=1e-5)
    assert math.isclose(float(logits[1, 0]), s * (cos_far - math.sin(math.pi - m) * m), rel_tol=1e-5)
    # Non-target columns keep s * cos.
    assert math.isclose(float(logits[0, 1]), s * math.sin(theta_small), rel_tol=1e-5)
    assert math.isclose(float(logits[1, 1]), s * math.sqrt(1 - cos_far ** 2), rel_tol=1e-5)


def test_margin_accuracy_is_stricter_than_plain_accuracy():
    head = head_with_weight(CosFace, [[1.0, 0.0], [0.0, 1.0]])
    angle = math.radians(40)  # cos 0.766 vs 0.643: ahead by less than m = 0.35
    emb = torch.tensor([[math.cos(angle), math.sin(angle)], [1.0, 0.0]])
    labels = torch.tensor([0, 0])
    counts = count_correct(head(emb), head(emb, labels), labels, num_classes=2)
    assert counts["total"].tolist() == [2, 0]
    assert counts["plain"].tolist() == [2, 0]
    assert counts["original"].tolist() == [1, 0]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cls", [CosFace, ArcFace, LinearHead])
def test_heads_run_on_the_device(cls, device):
    torch.manual_seed(0)
    head = cls(embed_dim=8, num_classes=5)
    emb, labels = torch.randn(4, 8), torch.tensor([0, 1, 4, 2])
    expected = head(emb, labels)
    got = head.to(device)(emb.to(device), labels.to(device))
    assert got.device.type == device
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-4, atol=1e-4)


def test_linear_head_ignores_labels():
    torch.manual_seed(0)
    head = LinearHead(embed_dim=3, num_classes=4)
    emb = torch.randn(2, 3)
    expected = emb @ head.weight.detach().T + head.bias.detach()
    torch.testing.assert_close(head(emb, torch.tensor([1, 3])), expected)
    torch.testing.assert_close(head(emb), expected)
