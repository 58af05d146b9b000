"""Registry[T]: components found by a short, stable name, with helpful errors for unknown names."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from plowline.errors import UnknownComponent

T = TypeVar("T")


class Registry(Generic[T]):
    """An explicit name → component table; one entry per line where it is declared."""

    def __init__(self, kind: str, entries: Iterable[tuple[str, T]]) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        for name, component in entries:
            if name in self._entries:
                raise ValueError(f"{kind} {name!r} is registered twice")
            self._entries[name] = component

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise UnknownComponent(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))
