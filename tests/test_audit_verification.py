"""Face verification (audit/verification.py): pair scores, the threshold at a FAR (worked out by hand, with few
impostor pairs included) and the TAR."""
import math

import numpy as np
import pytest
import torch

from audit.verification import pair_scores, tar_at_far, threshold_at_far

IMPOSTORS = np.array([0.4, 0.1, 0.9, 0.3, 0.2])
GENUINE = np.array([0.65, 0.75, 0.95, 0.5])


def test_threshold_is_the_linear_quantile_of_the_impostor_scores():
    # Sorted impostors 0.1 0.2 0.3 0.4 0.9. FAR 0.25: position (5 - 1) * 0.75 = 3, the score 0.4 itself.
    assert threshold_at_far(IMPOSTORS, 0.25) == pytest.approx(0.4)
    # FAR 0.1: position 3.6, 0.4 + 0.6 * (0.9 - 0.4) = 0.7.
    assert threshold_at_far(IMPOSTORS, 0.1) == pytest.approx(0.7)


def test_tar_counts_genuine_pairs_above_the_threshold():
    result = tar_at_far(GENUINE, IMPOSTORS, 0.1)
    assert result["threshold"] == pytest.approx(0.7)
    assert result["tar"] == pytest.approx(50.0)  # 0.75 and 0.95 are above 0.7
    assert result["far_achieved"] == pytest.approx(20.0)  # 0.9: one of five
    assert (result["genuine_pairs"], result["impostor_pairs"]) == (4, 5)


def test_few_impostor_pairs_put_the_threshold_between_the_two_highest():
    # FAR 1e-3 with 5 impostor pairs: position 4 * 0.999 = 3.996, 0.4 + 0.996 * 0.5 = 0.898: only the highest
    # impostor (0.9) is accepted, an achieved FAR of 20 %.
    result = tar_at_far(GENUINE, IMPOSTORS, 1e-3)
    assert result["threshold"] == pytest.approx(0.898)
    assert result["tar"] == pytest.approx(25.0)  # only 0.95
    assert result["far_achieved"] == pytest.approx(20.0)
    assert tar_at_far(np.array([]), IMPOSTORS, 1e-3)["tar"] is None


def test_pair_scores_are_cosines_of_every_unordered_pair():
    angles = [0, 60, 90, 180]
    embeddings = torch.tensor([[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in angles])
    embeddings[3] *= 2.0  # the length does not count
    genuine, impostor = pair_scores(embeddings, torch.tensor([0, 0, 1, 1]))
    assert sorted(genuine) == pytest.approx([0.0, 0.5])  # (0, 60) and (90, 180)
    assert sorted(impostor) == pytest.approx([-1.0, -0.5, 0.0, math.cos(math.radians(30))])
