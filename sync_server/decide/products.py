"""Deciding product ops: sku unique per owner, stock moved only by commutative actions.

``adjust_stock`` and ``record_sale`` ignore ``base_version``: two tablets selling offline must
both be applied, in either order. What protects the stock is the invariant, checked against the
current quantity at the moment of applying: it never goes below zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.ops import Op
from schemas.results import INSUFFICIENT_STOCK, VALIDATION_FAILED, FieldError
from schemas.values import MAX_COUNT

from .crud import Rules, commutative
from .decisions import EntityState, References, Rejected, rejected

ENTITY = "product"


def _check(op: Op, values: Mapping[str, Any], refs: References) -> Rejected | None:
    sku = values.get("sku")
    holder = None if sku is None else refs.products_by_sku.get(sku)
    if holder is not None and holder != op.id:
        error = FieldError("data.sku", "is already used by another product")
        return rejected(VALIDATION_FAILED, "sku is already in use", [error])
    return None


def _stock_after(state: EntityState, change: int) -> Rejected | None:
    quantity = state.data["quantity"]
    if quantity + change > MAX_COUNT:
        message = f"the stock would be {quantity + change}, above the largest, {MAX_COUNT}"
        return rejected(VALIDATION_FAILED, message, [FieldError("data.delta", message)])
    if quantity + change < 0:
        return rejected(
            INSUFFICIENT_STOCK, f"only {quantity} in stock; the op would leave {quantity + change}"
        )
    return None


def _adjust(state: EntityState, payload: Mapping[str, Any]) -> Rejected | None:
    return _stock_after(state, payload["delta"])


def _sell(state: EntityState, payload: Mapping[str, Any]) -> Rejected | None:
    return _stock_after(state, -payload["quantity"])


RULES = Rules(
    ENTITY,
    check=_check,
    actions={
        "adjust_stock": commutative(ENTITY, "adjust_stock", _adjust),
        "record_sale": commutative(ENTITY, "record_sale", _sell),
    },
)
