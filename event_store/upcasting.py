"""Old events stay readable forever: upcasters bring stored shapes to the current one on read.

The log is never rewritten. When an event's shape changes, its type gets a new schema version,
and a function from the old shape to the next one is registered here. Reading an event of
version 1 when the current one is 3 runs the 1→2 and 2→3 upcasters in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import UnknownEventType

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UpcasterRegistry:
    """Known event types, their current schema versions, and the steps between versions.

    A registry with no declared types is permissive (it passes every event through unchanged);
    once any type is declared, an undeclared type or a version with no path to the current one
    raises ``UnknownEventType`` instead of being silently misread.
    """

    def __init__(self) -> None:
        self._current: dict[str, int] = {}
        self._steps: dict[tuple[str, int], Upcaster] = {}

    def declare(self, type: str, current_version: int = 1) -> None:
        if current_version < 1:
            raise ValueError("schema versions start at 1")
        self._current[type] = current_version

    def register(self, type: str, from_version: int, step: Upcaster) -> None:
        """Register the step that turns ``type`` at ``from_version`` into ``from_version + 1``."""
        self._steps[(type, from_version)] = step

    def current_version(self, type: str) -> int | None:
        return self._current.get(type)

    @property
    def strict(self) -> bool:
        return bool(self._current)

    def upcast(self, type: str, version: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        current = self._current.get(type)
        if current is None:
            if self.strict:
                raise UnknownEventType(type, version)
            return version, data
        if version > current:
            raise UnknownEventType(type, version)
        while version < current:
            step = self._steps.get((type, version))
            if step is None:
                raise UnknownEventType(type, version)
            data = step(data)
            version += 1
        return version, data
