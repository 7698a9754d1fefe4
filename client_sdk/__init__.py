"""The offline-first Python client of the sync server.

Writes go to a local SQLite file first (validated by the server's own rules, applied to the
local copy at once, queued in a persistent outbox); ``sync()`` pushes the outbox and pulls what
changed, settling conflicts by a policy per entity. It speaks only HTTP and PROTOCOL.md, and
shares nothing with the server but ``schemas``.

    with Client("phone.db", "https://sync.example.com") as client:
        client.login("ann@example.com", "correct horse battery staple")
        show = client.shows.create(date="2026-12-01", city="Madrid", country="ES", fee="12000")
        client.sync()
"""

from .client import Client
from .conflicts import ConflictInfo, Policy, Resolver, Strategy
from .errors import (
    AlreadyExists,
    ApiError,
    AuthError,
    ClientError,
    NetworkError,
    NotAuthenticated,
    NotFound,
    RateLimited,
    ServerError,
    SessionRevoked,
    StoreInUse,
    SyncError,
    ValidationError,
    WrongUser,
)
from .live import LiveSettings, LiveStatus, LiveSync
from .local import Changed
from .loop import SyncLoop
from .records import PendingOp, Record, Rejection, SyncReport
from .retry import RetryPolicy

__all__ = [
    "AlreadyExists",
    "ApiError",
    "AuthError",
    "Changed",
    "Client",
    "ClientError",
    "ConflictInfo",
    "LiveSettings",
    "LiveStatus",
    "LiveSync",
    "NetworkError",
    "NotAuthenticated",
    "NotFound",
    "PendingOp",
    "Policy",
    "RateLimited",
    "Record",
    "Rejection",
    "Resolver",
    "RetryPolicy",
    "ServerError",
    "SessionRevoked",
    "StoreInUse",
    "Strategy",
    "SyncError",
    "SyncLoop",
    "SyncReport",
    "ValidationError",
    "WrongUser",
]
