"""Datasets (CASIA-100, any ImageFolder tree, the built-in synthetic faces), class order, task plans, subsets."""
from data.datasets import DATA_MODES, RunData, build_data, dataset_classes, resolve_root, without_classes

__all__ = ["DATA_MODES", "RunData", "build_data", "dataset_classes", "resolve_root", "without_classes"]
