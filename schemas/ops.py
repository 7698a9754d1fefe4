"""The push envelope (PROTOCOL.md, "Push") and the upcasting of older op schemas.

What is checked here, and what is not: ids must be UUIDs and the envelope must have the right
JSON types, or the whole request is refused (422), because such a request cannot even be
answered op by op (a result names its op by ``op_id``). ``entity``, ``action`` and ``data`` stay
loose (plain strings, a raw dict) so that one bad op is answered ``rejected`` on its own and
does not block the rest of an offline queue.

Unknown members are refused at envelope level too: a misspelt ``"atomc": true`` silently
ignored would turn an all-or-nothing batch into a partial one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final
from uuid import UUID

import msgspec
from msgspec import Meta

from .results import UNSUPPORTED_SCHEMA, OpError

CURRENT_OP_SCHEMA: Final = 1

# Long enough for any real name, short enough that an echoed junk value stays small.
_Name = Annotated[str, Meta(max_length=64)]


class Op(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    op_id: UUID
    entity: _Name
    id: UUID
    action: _Name
    base_version: int | None = None
    data: dict[str, Any] = {}
    client_ts: _Name | None = None
    """The device's clock when the op was queued; recorded in metadata, never trusted for order."""


class PushRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    client_id: UUID
    ops: list[Op]
    schema_version: int = CURRENT_OP_SCHEMA
    atomic: bool = False


OpUpcaster = Callable[[Op], Op]

# from_version -> the step that brings an op of that version to the next one. Version 1 is the
# first and current schema, so there is nothing to register yet; when version 2 comes, its
# 1 -> 2 step goes here and CURRENT_OP_SCHEMA moves to 2.
_STEPS: Mapping[int, OpUpcaster] = {}


def upcast_op(op: Op, schema_version: int) -> Op | OpError:
    """``op`` written against ``schema_version``, in the current schema, or why it cannot be."""
    if not 1 <= schema_version <= CURRENT_OP_SCHEMA:
        return OpError(
            UNSUPPORTED_SCHEMA,
            f"op schema version {schema_version} is not supported; "
            f"this server accepts 1 to {CURRENT_OP_SCHEMA}",
        )
    while schema_version < CURRENT_OP_SCHEMA:
        step = _STEPS.get(schema_version)
        if step is None:
            return OpError(UNSUPPORTED_SCHEMA, f"no upcaster from op schema {schema_version}")
        op = step(op)
        schema_version += 1
    return op
