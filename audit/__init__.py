"""Audits of what a forgetting run really forgot, beyond test accuracy (computed per task with ``--audit``): membership
inference, a kNN embedding probe, face verification and relearn attacks (whole model and prompt-only), each also of an
oracle that never learned the classes; run.py joins them (docs/audits.md)."""
