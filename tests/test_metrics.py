"""Forgetting metrics: H-mean on a published cell, micro-averaged class-set accuracy, values that do not apply."""
import math

import pytest
import torch

from util.metrics import ClassCounts, h_mean, task_metrics


def test_h_mean_reproduces_table_3_gs_lora_100_20_cell():
    acc_r, acc_f, acc_f_before = 74.16, 0.00, 74.65
    drop = acc_f_before - acc_f
    expected = 2 * acc_r * drop / (acc_r + drop)
    h = h_mean(acc_r, acc_f_before, acc_f)
    assert math.isclose(h, expected, rel_tol=1e-12)
    assert f"{h:.2f}" == "74.40"


@pytest.mark.parametrize("acc_r, before, after, expected", [
    (0.0, 50.0, 50.0, 0.0),  # nothing retained and nothing forgotten: 0, not a division by zero
    (0.0, 80.0, 0.0, 0.0),  # everything forgotten but nothing retained
    (90.0, 60.0, 60.0, 0.0),  # retained but nothing forgotten
    (4.0, 10.0, 14.5, 0.0),  # Acc_f rose by 4.5: the raw formula gives 2*4*(-4.5)/(-0.5) = 72
    (50.0, 10.0, 20.0, 0.0),  # Acc_f rose by 10: the raw formula gives -25
    (None, 60.0, 0.0, None),
    (90.0, None, 0.0, None),
    (90.0, 60.0, None, None),
])
def test_h_mean_edge_cases(acc_r, before, after, expected):
    assert h_mean(acc_r, before, after) == expected


def counts(total, original, plain=None):
    return ClassCounts(torch.tensor(total), {"original": torch.tensor(original),
                                            "plain": torch.tensor(plain if plain is not None else original)})


def test_accuracy_is_micro_averaged_over_the_images_of_a_class_set():
    c = counts([10, 30, 0, 5], [5, 27, 0, 5], plain=[10, 30, 0, 5])
    assert c.accuracy([0, 1]) == pytest.approx(100 * 32 / 40)  # macro average would be 70
    assert c.accuracy([0, 1], "plain") == 100.0
    assert c.accuracy([3, 0]) == pytest.approx(100 * 10 / 15)
    assert c.accuracy([]) is None
    assert c.accuracy([2]) is None  # a class set without test images


def test_task_metrics_leave_inapplicable_values_none():
    before = counts([10, 10, 10, 10], [9, 8, 7, 6])
    after = counts([10, 10, 10, 10], [8, 8, 1, 0])
    first = task_metrics(before, after, remain=[0, 1], forget=[2], old=[], missing=[], convention="original")
    assert first["acc_o"] is None and first["acc_o_before"] is None
    assert first["acc_m"] is None and first["acc_m_before"] is None
    assert first["acc_r"] == pytest.approx(80.0) and first["acc_r_before"] == pytest.approx(85.0)
    assert first["acc_f"] == pytest.approx(10.0) and first["acc_f_before"] == pytest.approx(70.0)
    assert first["h_mean"] == pytest.approx(2 * 80 * 60 / 140)

    later = task_metrics(before, after, remain=[1], forget=[2], old=[3], missing=[0], convention="original")
    assert later["acc_o"] == 0.0 and later["acc_o_before"] == pytest.approx(60.0)
    assert later["acc_m"] == pytest.approx(80.0)
