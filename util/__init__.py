"""The ground floor, importing nothing above it: registries, metrics, checkpoints, errors, logging, tables, cost."""
