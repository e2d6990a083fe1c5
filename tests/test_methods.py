"""Every registered method through two tiny CPU tasks: it finishes (the engine stops on a non-finite loss),
reports what it trains, and forgets. A new method must add its tiny-data settings here."""
import pytest

import baselines  # noqa: F401  (registers the baselines)
import gs_lora  # noqa: F401  (registers GS-LoRA and GS-LoRA++)
from engine import METHODS

# Hyper-parameters that make each method act within a few epochs on the tiny data.
TINY = {
    "gs_lora": dict(kw=dict(rank=4, bound=15.0, beta=0.5, alpha=1e-3), settings=dict(epochs=6)),
    "gs_lora_pp": dict(kw=dict(rank=4, bound=15.0, beta=0.5, alpha=1e-3, prototype=True, pro_f_weight=0.1),
                       settings=dict(epochs=6)),
    "l2": dict(kw=dict(penalty_weight=1.0, replay=True), settings=dict(epochs=3, lr=3e-3)),
    "ewc": dict(kw=dict(penalty_weight=1.0, replay=True), settings=dict(epochs=3, lr=3e-3)),
    "mas": dict(kw=dict(penalty_weight=1.0, replay=True), settings=dict(epochs=3, lr=3e-3)),
    "lwf": dict(kw={}, settings=dict(epochs=4, lr=3e-3)),
    "der": dict(kw={}, settings=dict(epochs=4, lr=3e-3)),
    "der_pp": dict(kw={}, settings=dict(epochs=4, lr=3e-3)),
    "fdr": dict(kw={}, settings=dict(epochs=4, lr=3e-3)),
    "scrub": dict(kw=dict(superepochs=1, lr=1e-3, gamma=1.0), settings=dict(selection="last")),
    "scrub_s": dict(kw=dict(superepochs=1, lr=1e-3, gamma=1.0), settings=dict(selection="last")),
    "lirf": dict(kw={}, settings=dict(epochs=3, lr=3e-3)),
    "retrain": dict(kw={}, settings=dict(epochs=10, lr=1e-2)),
}


def test_every_registered_method_has_tiny_settings():
    assert set(METHODS.names()) == set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_method_runs_two_tasks_and_forgets(name, run_tiny, pretrained_model):
    results = run_tiny(name, settings_kw=TINY[name]["settings"], **TINY[name]["kw"])
    first, second = results["tasks"]
    assert first["acc_f"] < first["acc_f_before"] - 20, first
    assert second["acc_f"] <= second["acc_f_before"], second
    assert second["acc_o"] is not None and first["acc_o"] is None
    total = sum(p.numel() for p in pretrained_model.parameters())
    assert 0 < first["trainable_params"] <= total
    assert first["trainable_ratio"] == pytest.approx(100 * first["trainable_params"] / total)
