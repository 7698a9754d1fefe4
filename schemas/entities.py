"""The catalog: which entities exist, their field Structs, and the actions each accepts."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import msgspec

from .fields import (
    AdjustStock,
    CostFields,
    LogSet,
    ProductFields,
    RecordSale,
    ShowFields,
    WorkoutFields,
)

CREATE: Final = "create"
UPDATE: Final = "update"
DELETE: Final = "delete"
CRUD: Final = frozenset({CREATE, UPDATE, DELETE})

FIELDS: Mapping[str, type[msgspec.Struct]] = MappingProxyType(
    {
        "show": ShowFields,
        "cost": CostFields,
        "workout": WorkoutFields,
        "product": ProductFields,
    }
)

ACTION_PAYLOADS: Mapping[tuple[str, str], type[msgspec.Struct]] = MappingProxyType(
    {
        ("workout", "log_set"): LogSet,
        ("product", "adjust_stock"): AdjustStock,
        ("product", "record_sale"): RecordSale,
    }
)
"""Actions beyond create/update/delete. All of them commute: they ignore ``base_version``."""

CREATE_ONLY: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {"product": {"quantity": "cannot be changed by update; use the adjust_stock action"}}
)
"""Fields accepted on create and refused on update, with the message that says why."""


def is_entity(entity: str) -> bool:
    return entity in FIELDS


def actions_of(entity: str) -> frozenset[str]:
    return CRUD | {action for (owner, action) in ACTION_PAYLOADS if owner == entity}


def writable_fields(entity: str) -> tuple[str, ...]:
    """Every client-writable field of ``entity``, in declaration order."""
    return FIELDS[entity].__struct_fields__
