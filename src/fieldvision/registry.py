"""A tiny name → factory registry, in the style of timm's model registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from fieldvision.errors import ConfigError

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """Maps names to factories.

    Args:
        kind: Human-readable kind of thing registered ("backbone", "loss"), used in errors.

    Example:
        >>> LOSSES: Registry[Callable] = Registry("loss")
        >>> @LOSSES.register("mse")
        ... def mse(): ...
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering `obj` under `name` (names are unique)."""

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """Return the factory for `name`; `ConfigError` listing the choices if unknown."""
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
