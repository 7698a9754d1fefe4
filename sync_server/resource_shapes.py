"""The body and answer types of the REST collections, built from the entity field Structs.

Only the OpenAPI document uses them: requests are decoded and checked by push's validation, and
answers are the stored rows. Building them from ``schemas`` keeps the document and the
validation one definition.
"""

from __future__ import annotations

from functools import cache
from typing import Any
from uuid import UUID

import msgspec

from schemas.entities import CREATE_ONLY, FIELDS
from schemas.rows import row_type


def _name(entity: str, suffix: str) -> str:
    return f"{entity.capitalize()}{suffix}"


@cache
def create_type(entity: str) -> type[msgspec.Struct]:
    """The fields of a create, and ``id`` (the client's UUID; the server picks one if absent)."""
    members: list[Any] = [("id", UUID | msgspec.UnsetType, msgspec.UNSET)]
    for field in msgspec.structs.fields(FIELDS[entity]):
        if field.required:
            members.append((field.name, field.type))
        else:
            members.append((field.name, field.type, field.default))
    return msgspec.defstruct(
        _name(entity, "Create"),
        members,
        kw_only=True,
        forbid_unknown_fields=True,
        module=__name__,
    )


@cache
def patch_type(entity: str) -> type[msgspec.Struct]:
    """Any non-empty subset of the writable fields, except those only a create sets."""
    refused = CREATE_ONLY.get(entity, {})
    members = [
        (field.name, field.type | msgspec.UnsetType, msgspec.UNSET)
        for field in msgspec.structs.fields(FIELDS[entity])
        if field.name not in refused
    ]
    return msgspec.defstruct(
        _name(entity, "Patch"),
        members,
        kw_only=True,
        forbid_unknown_fields=True,
        module=__name__,
    )


@cache
def page_type(entity: str) -> type[msgspec.Struct]:
    members = [
        ("items", list[row_type(entity)]),  # type: ignore[misc]
        ("next_cursor", str | None),
        ("has_more", bool),
    ]
    return msgspec.defstruct(_name(entity, "Page"), members, module=__name__)
