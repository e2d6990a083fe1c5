"""Baselines on the shared engine, one module per method; importing this package registers them all."""
