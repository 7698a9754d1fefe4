"""The push envelope (PROTOCOL.md, "Push") and the upcasting of older op schemas.

What is checked here, and what is not: the envelope must have the right JSON types, and every
op must be an object whose ``op_id`` is a UUID, or the whole request is refused (422), because
such a request cannot even be answered op by op (a result names its op by ``op_id``). Anything
else wrong with an op (a member of the wrong type, a missing one, an unknown one, an ``id`` that
is no UUID) is answered ``rejected`` for that op alone (``read_ops``), so that one bad entry does
not block the rest of an offline queue. ``entity``, ``action`` and ``data`` stay loose (plain
strings, a raw dict) for the same reason: deciding answers what is wrong with them.

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
from .validate import field_error

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


class LooseRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The envelope as read when the body does not read as a ``PushRequest``: each op still a
    JSON object, read one by one by ``read_ops``."""

    client_id: UUID
    ops: list[dict[str, Any]]
    schema_version: int = CURRENT_OP_SCHEMA
    atomic: bool = False


_NIL: Final = UUID(int=0)


def read_ops(loose: LooseRequest) -> tuple[PushRequest, dict[int, OpError]]:
    """The request, with each op that does not read as an ``Op`` replaced by a stand-in that
    keeps its place and its ``op_id``; and, by index, the answer each of those gets instead of
    being decided (``unsupported_schema`` if the envelope's schema is one this server cannot
    read: the op may be sound in it). Raises ``msgspec.ValidationError``, with the path, for an
    op without a readable ``op_id``."""
    ops: list[Op] = []
    unreadable: dict[int, OpError] = {}
    unsupported = unsupported_schema(loose.schema_version)
    for index, raw in enumerate(loose.ops):
        try:
            ops.append(msgspec.convert(raw, Op, strict=True))
            continue
        except msgspec.ValidationError as error:
            problem = field_error("", error)
        if "op_id" not in raw:
            raise msgspec.ValidationError(
                f"Object missing required field `op_id` - at `$.ops[{index}]`"
            )
        try:
            op_id = msgspec.convert(raw["op_id"], UUID, strict=True)
        except msgspec.ValidationError as error:
            raise msgspec.ValidationError(f"{error} - at `$.ops[{index}].op_id`") from None
        ops.append(Op(op_id, entity="", id=_NIL, action=""))
        if unsupported is not None:
            unreadable[index] = unsupported
        else:
            # The op's own members sit at the top of its path: ``base_version``, not
            # ``.base_version``; a problem with the op as a whole is at ``$``.
            where = FieldError(problem.path.lstrip(".") or "$", problem.message)
            unreadable[index] = OpError(VALIDATION_FAILED, "the op cannot be read", [where])
    request = PushRequest(loose.client_id, ops, loose.schema_version, loose.atomic)
    return request, unreadable


OpUpcaster = Callable[[Op], Op]

# from_version -> the step that brings an op of that version to the next one. Version 1 is the
# first and current schema, so there is nothing to register yet; when version 2 comes, its
# 1 -> 2 step goes here and CURRENT_OP_SCHEMA moves to 2.
_STEPS: Mapping[int, OpUpcaster] = {}


def prepare_op(op: Op, schema_version: int) -> Op | OpError:
    """``op`` brought to the current schema and checked (``check_op``), or why it cannot be.

    In that order: an op of a schema this server cannot read is answered
    ``unsupported_schema``, never judged by the current schema's rules."""
    current = upcast_op(op, schema_version)
    if isinstance(current, OpError):
        return current
    return check_op(current) or current


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
    error = unsupported_schema(schema_version)
    if error is not None:
        return error
    while schema_version < CURRENT_OP_SCHEMA:
        op = _STEPS[schema_version](op)
        schema_version += 1
    return op


def unsupported_schema(schema_version: int) -> OpError | None:
    """Why ops written against ``schema_version`` cannot be read here, if they cannot."""
    if not 1 <= schema_version <= CURRENT_OP_SCHEMA:
        return OpError(
            UNSUPPORTED_SCHEMA,
            f"op schema version {schema_version} is not supported; "
            f"this server accepts 1 to {CURRENT_OP_SCHEMA}",
        )
    for version in range(schema_version, CURRENT_OP_SCHEMA):
        if version not in _STEPS:
            return OpError(UNSUPPORTED_SCHEMA, f"no upcaster from op schema {version}")
    return None
