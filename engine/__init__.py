"""The training engine, one idea per module.

method.py       the ``Method`` contract every forgetting method implements, its registry and method-only helpers
optim.py        the one optimizer and learning-rate schedule factory
evaluation.py   evaluation passes (per-class counts in both accuracy conventions), prototypes, test reports
settings.py     the run-level settings shared by pre-training and forgetting
forgetting.py   the task -> epoch -> batch loop of continual forgetting, selection, results and resume
pretraining.py  supervised pre-training with validation-split selection
undo.py         undoing a GS-LoRA task: its saved LoRA update subtracted from a run's weights
"""
