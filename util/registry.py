"""A tiny name -> builder registry, shared by backbones, heads and forgetting methods; importing a module that defines
builders only registers them."""
from typing import Callable


class Registry:
    """Maps a lowercase name to a builder (a class or a function)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._builders: dict[str, Callable] = {}

    def register(self, *names: str) -> Callable:
        """Decorator registering the builder under one or more names (the first is the canonical one)."""

        def wrap(builder: Callable) -> Callable:
            for name in names:
                key = name.lower()
                if key in self._builders:
                    raise ValueError(f"{self.kind} '{name}' is registered twice")
                self._builders[key] = builder
            return builder

        return wrap

    def names(self) -> list[str]:
        return sorted(self._builders)

    def unique(self) -> list[Callable]:
        """Each builder once, whatever its number of names."""
        return list(dict.fromkeys(self._builders.values()))

    def get(self, name: str) -> Callable:
        try:
            return self._builders[name.lower()]
        except KeyError:
            raise KeyError(f"unknown {self.kind} '{name}'; choose one of: {', '.join(self.names())}") from None

    def build(self, name: str, **kwargs):
        return self.get(name)(**kwargs)

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._builders
