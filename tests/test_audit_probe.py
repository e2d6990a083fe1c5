"""The kNN embedding probe (audit/probe.py) on hand-made 2-D embeddings: cosine neighbours, majority vote."""
import math

import pytest
import torch

from audit.probe import knn_accuracy


def at(degrees, scale: float = 1.0) -> list:
    return [scale * math.cos(math.radians(degrees)), scale * math.sin(math.radians(degrees))]


def test_knn_accuracy_votes_among_the_cosine_nearest_fitted_embeddings():
    # Classes around 0 (plus one at 60), 90 and 180 degrees; lengths differ, which cosine distance ignores.
    fit = torch.tensor([at(-5), at(0, 10.0), at(5), at(60), at(85), at(90, 0.1), at(95), at(175), at(180, 3.0),
                        at(185)])
    fit_labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    test = torch.tensor([at(10), at(80, 5.0), at(175), at(62), at(170, 0.1)])
    labels = torch.tensor([0, 0, 2, 0, 2])
    # 3 neighbours: 10 -> (5, 0, -5) class 0, right; 80 -> (85, 90, 95) class 1, wrong; 175 -> class 2, right;
    # 62 -> (60, 85, 90) two of class 1, wrong; 170 (short: near the short 90-degree point in Euclidean terms) ->
    # (175, 180, 185) class 2, right.
    assert knn_accuracy(fit, fit_labels, test, labels, neighbours=3) == pytest.approx(60.0)
    # 1 neighbour: 62 -> 60, class 0, right; 80 -> 85 still wrong; 170 -> 175, right.
    assert knn_accuracy(fit, fit_labels, test, labels, neighbours=1) == pytest.approx(80.0)


def test_knn_takes_exactly_the_given_number_of_neighbours():
    # Around 93 degrees: 95 (class 1), 90 (class 1), 100 (class 0), then 105 (class 0). Three neighbours vote
    # class 1; a fourth would make it a tie.
    fit = torch.tensor([at(90), at(95), at(100), at(105)])
    assert knn_accuracy(fit, torch.tensor([1, 1, 0, 0]), torch.tensor([at(93)]), torch.tensor([1]),
                        neighbours=3) == pytest.approx(100.0)
