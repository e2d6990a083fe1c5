"""Audits of what a forgetting run really forgot, beyond test accuracy (computed per task with ``--audit``).

settings.py      the audit flags as one record, and what of them defines the numbers
samples.py       the images an audit looks at (capped per class, seeded) and the model's outputs on them
membership.py    membership inference: a confidence-feature classifier and a loss-threshold attack
probe.py         a kNN probe on the frozen embeddings: are forgotten identities still separable?
verification.py  face verification: TAR at a fixed FAR on pairs of forgotten and of retained identities
prompts.py       learned input tokens prepended to the token sequence (the prompt-only attacker)
relearn.py       the relearn attack: fine-tune on k images per forgotten class, measure the recovered Acc_f
oracle.py        the same audits of a model that never learned the forgotten classes, and the gap to it
run.py           all audits of one model and task, as stored under "audit" in results.json
"""
