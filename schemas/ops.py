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
from typing import Any, Final
from uuid import UUID

import msgspec

from .moments import parse_moment
from .results import UNSUPPORTED_SCHEMA, VALIDATION_FAILED, FieldError, OpError

CURRENT_OP_SCHEMA: Final = 1

MAX_NAME: Final = 64
"""Longest ``entity`` or ``action``: any real one fits, an echoed junk one stays small. Checked
op by op (``check_op``), so that one bad op does not fail its batch (``client_ts`` is bounded
by ``moments.MAX_TEXT``)."""


# gc=False: made by the thousand in a push and never part of a reference cycle, so the
# cyclic garbage collector need not track them (msgspec's option).
class Op(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    op_id: UUID
    entity: str
    id: UUID
    action: str
    base_version: int | None = None
    data: dict[str, Any] = {}
    client_ts: str | None = None
    """The device's clock when the op was queued (RFC 3339); recorded in metadata, never
    trusted for order."""


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


def prepare_op(op: Op, schema_version: int) -> Op | OpError:
    """``op`` checked (``check_op``) and brought to the current schema, or why it cannot be."""
    return check_op(op) or upcast_op(op, schema_version)


def check_op(op: Op) -> OpError | None:
    """What is wrong with an op's own members, before its entity decides on its data."""
    errors = [
        FieldError(name, f"must be at most {MAX_NAME} characters")
        for name, value in (("entity", op.entity), ("action", op.action))
        if len(value) > MAX_NAME
    ]
    if op.client_ts is not None:
        try:
            parse_moment(op.client_ts)
        except ValueError as error:
            errors.append(FieldError("client_ts", str(error)))
    if errors:
        return OpError(VALIDATION_FAILED, "the op is invalid", errors)
    return None


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
