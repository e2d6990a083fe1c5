"""Baselines on the shared engine, one module per method; importing this package registers them all."""
from baselines import der, der_pp, ewc, fdr, l2, lirf, lwf, mas, retrain, scrub  # noqa: F401  (registration)
