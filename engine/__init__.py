"""The training engine, one idea per module (docs/layout.md): the Method contract (method.py), the optimizer factory,
evaluation, run settings, the continual-forgetting loop (forgetting.py), pre-training and undo."""
