"""``client.shows``, ``client.costs``, ``client.workouts``, ``client.inventory``: typed entry
points over ``local.py``, one class per entity with the actions it has.

Values may be given as Python objects (``Decimal``, ``date``, ``datetime``, ``UUID``): they are
turned into their wire form before validation. Floats are refused for money and measures, as
the server refuses them: they have lost precision already (give ``Decimal("12.50")`` or
``"12.50"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from .local import LocalData
from .records import Record
from .wire import to_wire


def _fields(data: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    return to_wire({**(data or {}), **fields})


def _id(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


class Collection:
    """Reads and writes of one entity type."""

    entity: str = ""

    def __init__(self, local: LocalData) -> None:
        self._local = local

    def get(self, id: UUID | str) -> Record | None:
        """The entity as the app sees it (pending ops applied), or None if there is none."""
        return self._local.live(self.entity, _id(id))

    def list(self, **where: Any) -> list[Record]:
        """Every live entity, oldest first; ``where`` keeps those whose fields equal the given
        values (``client.costs.list(show_id=show.id)``)."""
        wanted = to_wire(where)
        return [
            record
            for record in self._local.all_live(self.entity)
            if all(record.get(key) == value for key, value in wanted.items())
        ]

    def create(
        self,
        data: Mapping[str, Any] | None = None,
        /,
        *,
        id: UUID | str | None = None,
        **fields: Any,
    ) -> Record:
        """Queue the creation of a new entity (``id`` is generated unless given) and return it.

        Raises ``ValidationError`` for invalid fields, ``AlreadyExists`` for a known id.
        """
        return self._local.create(
            self.entity, None if id is None else _id(id), _fields(data, fields)
        )

    def update(
        self, id: UUID | str, data: Mapping[str, Any] | None = None, /, **fields: Any
    ) -> Record:
        """Queue a change of some fields; fields set to their current value are left out (and
        an update that changes nothing queues nothing). Raises ``NotFound`` for an entity the
        local copy does not hold (or holds deleted)."""
        return self._local.update(self.entity, _id(id), _fields(data, fields))

    def delete(self, id: UUID | str) -> None:
        """Queue the deletion (of a show: its costs go with it, as on the server)."""
        self._local.delete(self.entity, _id(id))


class Shows(Collection):
    entity = "show"


class Costs(Collection):
    entity = "cost"


class Workouts(Collection):
    entity = "workout"

    def log_set(
        self,
        id: UUID | str,
        *,
        exercise: str,
        reps: int,
        weight: Decimal | str | int,
        unit: str = "kg",
    ) -> Record:
        """Append a set to the named exercise (added if new). Commutes with other devices'
        sets: never a version conflict."""
        payload = to_wire({"exercise": exercise, "reps": reps, "weight": weight, "unit": unit})
        return self._local.act(self.entity, _id(id), "log_set", payload)


class Inventory(Collection):
    """Products. Stock moves only through ``adjust_stock`` and ``record_sale``, which commute
    across devices; the server refuses one (``insufficient_stock``, reported as a rejection)
    if it would take the stock below zero."""

    entity = "product"

    def adjust_stock(self, id: UUID | str, *, delta: int, reason: str) -> Record:
        payload = to_wire({"delta": delta, "reason": reason})
        return self._local.act(self.entity, _id(id), "adjust_stock", payload)

    def record_sale(
        self,
        id: UUID | str,
        *,
        quantity: int,
        unit_price: Decimal | str | int,
        sold_at: datetime | str,
    ) -> Record:
        payload = to_wire({"quantity": quantity, "unit_price": unit_price, "sold_at": sold_at})
        return self._local.act(self.entity, _id(id), "record_sale", payload)
