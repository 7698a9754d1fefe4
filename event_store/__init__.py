"""The append-only event log: the product's single source of truth.

It knows streams, versions, positions and idempotency keys, and nothing of entities or HTTP.
"""

from .errors import (
    ConcurrencyError,
    EventStoreError,
    InvalidAppend,
    MigrationError,
    StoreUnavailable,
    UnknownEventType,
)
from .events import (
    MAX_POSITION,
    MAX_SCHEMA_VERSION,
    MAX_VERSION,
    START,
    AppendResult,
    Checkpoint,
    EventMetadata,
    FeedPart,
    NewEvent,
    Page,
    RecordedEvent,
    StreamId,
)
from .migrator import EVENT_LOG, MigrationSet, migrate, pending
from .rows import as_uuid, chunks
from .store import (
    AppendRequest,
    EventStore,
    Recalled,
    Sql,
    Timeouts,
    Transaction,
    open_store,
    utc_now,
)
from .upcasting import UpcasterRegistry

__all__ = [
    "EVENT_LOG",
    "MAX_POSITION",
    "MAX_SCHEMA_VERSION",
    "MAX_VERSION",
    "START",
    "AppendRequest",
    "AppendResult",
    "Checkpoint",
    "ConcurrencyError",
    "EventMetadata",
    "EventStore",
    "EventStoreError",
    "FeedPart",
    "InvalidAppend",
    "MigrationError",
    "MigrationSet",
    "NewEvent",
    "Page",
    "Recalled",
    "RecordedEvent",
    "Sql",
    "StoreUnavailable",
    "StreamId",
    "Timeouts",
    "Transaction",
    "UnknownEventType",
    "UpcasterRegistry",
    "as_uuid",
    "chunks",
    "migrate",
    "open_store",
    "pending",
    "utc_now",
]
