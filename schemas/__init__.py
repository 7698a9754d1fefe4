"""Wire shapes and their validation: ops, results, pull pages, entity fields, event names.

Depends on msgspec and the standard library only (``events.build_registry`` also on
``event_store.upcasting``), so the client SDK can share these definitions.
"""

from .entities import (
    ACTION_PAYLOADS,
    CREATE,
    CREATE_ONLY,
    DELETE,
    FIELDS,
    UPDATE,
    actions_of,
    is_entity,
    writable_fields,
)
from .ops import CURRENT_OP_SCHEMA, Op, PushRequest, upcast_op
from .pull import Change, PullPage
from .results import Conflict, FieldError, OpError, OpResult, PushResponse
from .validate import Clean, validate_action, validate_fields

__all__ = [
    "ACTION_PAYLOADS",
    "CREATE",
    "CREATE_ONLY",
    "CURRENT_OP_SCHEMA",
    "DELETE",
    "FIELDS",
    "UPDATE",
    "Change",
    "Clean",
    "Conflict",
    "FieldError",
    "Op",
    "OpError",
    "OpResult",
    "PullPage",
    "PushRequest",
    "PushResponse",
    "actions_of",
    "is_entity",
    "upcast_op",
    "validate_action",
    "validate_fields",
    "writable_fields",
]
