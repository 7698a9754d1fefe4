"""Python values into their wire form (PROTOCOL.md: decimals as strings, RFC 3339 in UTC)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec


def to_wire(values: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-ready values: ``Decimal`` and ``UUID`` as strings, dates and times in RFC 3339.

    Floats stay floats, so that validation refuses them for money and measures with its own
    clear message, as the server does.
    """
    wire = msgspec.to_builtins(dict(values), enc_hook=_unknown)
    assert isinstance(wire, dict)
    return wire


def _unknown(value: Any) -> Any:
    raise TypeError(f"cannot send a value of type {type(value).__name__}")


def utc_now() -> str:
    """The current time as the wire wants it: RFC 3339, UTC, with a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
