"""Rows as either backend gives them back, and statements either backend accepts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar
from uuid import UUID

T = TypeVar("T")


def as_uuid(value: Any) -> UUID:
    """A UUID column's value as a UUID. PostgreSQL, and SQLite for a column declared ``UUID``,
    give one; SQLite gives text where the declared type is lost (an aggregate, ``DISTINCT``,
    an expression)."""
    return value if isinstance(value, UUID) else UUID(str(value))


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items``, at most ``size`` at a time: SQLite caps the parameters of one statement."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
