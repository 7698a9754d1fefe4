"""Typed errors of the event store. Every one of them means: nothing was written."""

from __future__ import annotations

from .events import StreamId


class EventStoreError(Exception):
    """Base class: the store refused the call and wrote nothing."""


class ConcurrencyError(EventStoreError):
    """A stream was not at the version the caller expected."""

    def __init__(self, stream: StreamId, expected: int, actual: int) -> None:
        self.stream = stream
        self.expected = expected
        self.actual = actual
        super().__init__(f"stream {stream} is at version {actual}, expected {expected}")


class InvalidAppend(EventStoreError):
    """The append itself is malformed (empty batch, negative expected version, bad event)."""


class UnknownEventType(EventStoreError):
    """An event was read whose type or schema version no upcaster knows how to bring current."""

    def __init__(self, type: str, schema_version: int) -> None:
        self.type = type
        self.schema_version = schema_version
        super().__init__(f"no upcaster for event type {type!r} at schema version {schema_version}")


class StoreUnavailable(EventStoreError):
    """The database cannot be reached; the caller may retry later (HTTP 503)."""


class MigrationError(EventStoreError):
    """A migration could not be applied, or an applied one was edited after release."""
