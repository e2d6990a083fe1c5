"""Membership inference (audit/membership.py): the attack features, the loss threshold and both attacks' member
rates, on hand-made inputs whose answers are worked out by hand or recomputed with numpy."""
import numpy as np
import pytest
import torch

from audit.membership import attack_features, classifier_attack, loss_threshold, loss_threshold_attack

MEMBER_LOSSES = np.array([0.1, 0.4, 0.35, 1.2])
NON_MEMBER_LOSSES = np.array([0.9, 0.3, 1.5, 2.0, 0.8])


def test_features_are_true_class_confidence_entropy_and_loss():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.3, 3.0]])
    labels = torch.tensor([0, 1])
    p = np.exp(logits.numpy().astype(np.float64))
    p /= p.sum(1, keepdims=True)
    expected = np.stack([[p[0, 0], -(p[0] * np.log(p[0])).sum(), -np.log(p[0, 0])],
                         [p[1, 1], -(p[1] * np.log(p[1])).sum(), -np.log(p[1, 1])]])
    assert attack_features(logits, labels) == pytest.approx(expected, rel=1e-9)


def test_loss_threshold_is_the_midpoint_with_the_best_balanced_accuracy():
    # Sorted losses: 0.1m 0.3n 0.35m 0.4m 0.8n 0.9n 1.2m 1.5n 2.0n. At the midpoint 0.6 three of four members and
    # one of five non-members fall at or under it: balanced accuracy (3/4 + 4/5) / 2 = 77.5 %, the best (1.35 gives
    # (1 + 2/5) / 2 = 70 %, 0.85 gives (3/4 + 3/5) / 2 = 67.5 %).
    assert loss_threshold(MEMBER_LOSSES, NON_MEMBER_LOSSES) == pytest.approx(0.6)
    attack = loss_threshold_attack(MEMBER_LOSSES, NON_MEMBER_LOSSES, np.array([0.5, 0.7, 3.0, 0.05, 0.2]))
    assert attack["member_rate"] == pytest.approx(60.0)  # 0.5, 0.05 and 0.2 are at or under 0.6
    assert attack["attack_accuracy"] == pytest.approx(77.5)


def test_loss_threshold_below_every_loss_when_no_split_beats_chance():
    # Members all above non-members: every threshold between them calls non-members members, none beats 50 %.
    threshold = loss_threshold(np.array([2.0, 3.0]), np.array([0.5, 1.0]))
    assert threshold == pytest.approx(-0.5)  # the first candidate, one below the smallest loss


def test_classifier_attack_calls_confident_forget_images_members():
    members = np.array([[0.9, 0.3, 0.10], [0.8, 0.5, 0.22], [0.95, 0.2, 0.05], [0.85, 0.4, 0.16]])
    non_members = np.array([[0.1, 2.0, 2.3], [0.2, 1.8, 1.6], [0.05, 2.2, 3.0], [0.3, 1.5, 1.2], [0.15, 1.9, 1.9]])
    forget = np.array([[0.9, 0.35, 0.1], [0.92, 0.3, 0.08], [0.1, 2.1, 2.3], [0.88, 0.3, 0.13]])
    attack = classifier_attack(members, non_members, forget)
    assert attack["member_rate"] == pytest.approx(75.0)  # three of the four look like members
    assert attack["attack_accuracy"] == pytest.approx(100.0)
    assert classifier_attack(members, non_members, non_members)["member_rate"] == 0.0
