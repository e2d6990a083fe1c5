"""Audits of what a forgetting run really forgot, beyond test accuracy (``--audit``): membership inference, a kNN probe,
face verification and relearn attacks, each also of an oracle that never learned the classes (docs/audits.md)."""
