"""Shared utilities: registries, metrics, checkpoints, logging and distributed helpers."""
