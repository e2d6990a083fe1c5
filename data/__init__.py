"""Datasets (CASIA-100, any ImageFolder tree, the built-in synthetic faces), class order, task plans, subsets."""
from data.datasets import DATA_MODES, RunData, build_data, num_classes_in, resolve_root

__all__ = ["DATA_MODES", "RunData", "build_data", "num_classes_in", "resolve_root"]
