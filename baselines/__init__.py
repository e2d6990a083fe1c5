"""Baselines on the shared engine, one module per method. Importing this package imports every module in it, and
each registers its method(s) with ``engine.method.METHODS``: adding a baseline is adding a file."""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
