"""Scalar wire types that msgspec cannot check alone: exact decimals, ISO codes, stock deltas,
and moments (``moments.py``).

Each is a subclass of a builtin (``Decimal``, ``str``, ``int``, ``datetime``) with a ``parse``
class method. msgspec hands any value bound for one of them to ``dec_hook``, which calls
``parse``; a ``ValueError`` raised there becomes a ``ValidationError`` carrying the path of the
value. ``enc_hook`` turns them back into their canonical JSON form.

Decimals
--------
Money and measures travel as strings (``"12000.00"``). A JSON integer is accepted because it is
exact; a JSON number with a fraction (a float) is refused because it has already lost precision
by the time it reaches us (``0.1 + 0.2``). Only plain notation is accepted: no exponent (``1e999``
would be a cheap way to make us do expensive arithmetic), no NaN or Infinity (they break every
comparison and sum).

Every decimal field takes at most ``MAX_PLACES`` = 4 decimal places, enough for the currencies
with three minor units (KWD, BHD…) and for percentages like ``12.125``, and a magnitude of at
most ``MAX_MAGNITUDE`` = 10^12. Canonical output: money keeps at least two places (``"12000"``
and ``"12000.0"`` become ``"12000.00"``, ``"1.125"`` stays), every other decimal drops trailing
zeros (``"15.50"`` becomes ``"15.5"``, ``"0.0"`` becomes ``"0"``). One canonical spelling per
value is what lets ``decide`` compare a proposed value with the stored one as plain strings.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, ClassVar, Self
from uuid import UUID

import msgspec

from .codes import COUNTRIES, CURRENCIES
from .moments import Moment

MAX_PLACES = 4
MAX_MAGNITUDE = Decimal(10) ** 12
# Longest plain spelling of an accepted value, with room for trailing zeros a client may pad.
_MAX_TEXT = 40
# ASCII digits only: \d would also match other scripts ("١٢"), which Decimal accepts too.
_PLAIN = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


class WireDecimal(Decimal):
    """A non-negative decimal with bounds; subclasses set the bounds and the canonical scale."""

    low: ClassVar[Decimal] = Decimal(0)
    high: ClassVar[Decimal] = MAX_MAGNITUDE
    min_places: ClassVar[int] = 0

    # No __dict__ (nor in the subclasses): a push parses hundreds of decimals.
    __slots__ = ("_canonical",)

    @classmethod
    def parse(cls, raw: object) -> Self:
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            if isinstance(raw, float):
                raise ValueError('must be a decimal string such as "12.50", not a JSON float')
            raise ValueError("must be a decimal string or an integer")
        if isinstance(raw, int):
            # Bounds are checked before anything is built from a huge integer; an integer has
            # no places to count. Adding zero turns -0 into 0, so that zero has one spelling.
            cls._check_bounds(raw)
            return cls(raw + 0)
        if len(raw) > _MAX_TEXT or not _PLAIN.fullmatch(raw):
            raise ValueError('must be a plain decimal string such as "12.50"')
        # The canonical spelling straight from the plain text the pattern let through:
        # Decimal's normalize, quantize and format cost three times as much, for every decimal
        # of every op. The value is built from it (one Decimal, not three): the same number.
        negative = raw[0] == "-"
        whole, _, fraction = raw.removeprefix("-").partition(".")
        fraction = fraction.rstrip("0")
        places = fraction.ljust(cls.min_places, "0")
        text = (whole.lstrip("0") or "0") + ("." + places if places else "")
        parsed = cls("-" + text) if negative and text.strip("0.") else cls(text)
        cls._check_bounds(parsed)
        if len(fraction) > MAX_PLACES:
            raise ValueError(f"must have at most {MAX_PLACES} decimal places")
        parsed._canonical = text
        return parsed

    @classmethod
    def _check_bounds(cls, value: Decimal | int) -> None:
        if value < cls.low:
            raise ValueError(f"must be >= {cls.low}")
        if value > cls.high:
            raise ValueError(f"must be <= {cls.high}")

    def canonical(self) -> str:
        text: str | None = getattr(self, "_canonical", None)
        if text is not None:
            return text
        places = max(self.min_places, _places(self))
        return format(Decimal(self).quantize(Decimal(1).scaleb(-places)), "f")


class Money(WireDecimal):
    __slots__ = ()
    min_places: ClassVar[int] = 2


class Percent(WireDecimal):
    __slots__ = ()
    high: ClassVar[Decimal] = Decimal(100)


class Measure(WireDecimal):
    """A physical quantity such as a weight: non-negative, plain canonical form."""

    __slots__ = ()


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite by construction
    return max(0, -exponent)


class CountryCode(str):
    """ISO 3166-1 alpha-2, uppercase as the standard writes it ("ES", not "es")."""

    __slots__ = ()

    @classmethod
    def parse(cls, raw: object) -> Self:
        if not isinstance(raw, str):
            raise ValueError("must be a string")
        if raw not in COUNTRIES:
            raise ValueError("must be an ISO 3166-1 alpha-2 country code in uppercase, e.g. ES")
        return cls(raw)


class CurrencyCode(str):
    """ISO 4217 alphabetic code, uppercase ("EUR")."""

    __slots__ = ()

    @classmethod
    def parse(cls, raw: object) -> Self:
        if not isinstance(raw, str):
            raise ValueError("must be a string")
        if raw not in CURRENCIES:
            raise ValueError("must be an ISO 4217 currency code in uppercase, e.g. EUR")
        return cls(raw)


MAX_COUNT = 10**12
"""Largest stock quantity, sale quantity or stock delta: anything above is a typo or an attack."""


class StockDelta(int):
    """A change of stock, never 0: a zero adjustment would be an event that says nothing."""

    __slots__ = ()

    @classmethod
    def parse(cls, raw: object) -> Self:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError("must be an integer")
        if raw == 0:
            raise ValueError("must not be 0")
        if not -MAX_COUNT <= raw <= MAX_COUNT:
            raise ValueError(f"must be between -{MAX_COUNT} and {MAX_COUNT}")
        return cls(raw)


_PARSERS = (WireDecimal, CountryCode, CurrencyCode, StockDelta, Moment)


def dec_hook(type_: type, raw: Any) -> Any:
    """msgspec decode hook for the types above."""
    if isinstance(type_, type) and issubclass(type_, _PARSERS):
        return type_.parse(raw)
    raise NotImplementedError(f"no decoder for {type_!r}")


def enc_hook(value: Any) -> Any:
    """msgspec encode hook: the canonical JSON form of the types above."""
    if isinstance(value, WireDecimal):
        return value.canonical()
    if isinstance(value, CountryCode | CurrencyCode):
        return str(value)
    if isinstance(value, StockDelta):
        return int(value)
    if isinstance(value, Moment):
        return value.plain()
    raise NotImplementedError(f"no encoder for {type(value)!r}")


def parse_uuid(text: str) -> UUID:
    """An id as the wire spells it, or ``ValueError``: the rule msgspec applies to every UUID in
    a body (36 characters with hyphens, or 32 hex digits), so that an id the REST routes take
    is one a push would take too. ``uuid.UUID`` alone also takes braces and a ``urn:uuid:``
    prefix, which a client would then find spelt otherwise in every answer."""
    try:
        return msgspec.convert(text, UUID, strict=True)
    except msgspec.ValidationError:
        raise ValueError(f"{text!r} is not a UUID") from None
