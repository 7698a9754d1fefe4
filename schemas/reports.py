"""What the report endpoints answer."""

from __future__ import annotations

from uuid import UUID

import msgspec


class SalesDay(msgspec.Struct, frozen=True):
    """One product's sales on one UTC day."""

    date: str
    product_id: UUID
    sku: str | None
    """The product's sku now (None once the product is gone for good)."""
    units: int
    revenue: str
    """Sum of quantity x unit price, as a decimal string."""
    sales: int


class SalesReport(msgspec.Struct, frozen=True, rename={"start": "from", "end": "to"}):
    start: str
    end: str
    days: list[SalesDay]
