"""Baselines on the shared engine, one module per method; importing this package registers them all."""
from baselines import l2, ewc, mas  # noqa: F401,E401  (L2, EWC, MAS)
from baselines import lwf, der, der_pp, fdr  # noqa: F401,E401  (LwF, DER, DER++, FDR)
from baselines import scrub, lirf, retrain  # noqa: F401,E401  (SCRUB, SCRUB-S, LIRF, Retrain)
