"""Moments: RFC 3339 date-times with a zone, as every part of the wire takes them.

One parser for all of them (a sale's ``sold_at``, an op's ``client_ts``, the ``since`` and
``as_of`` query parameters): msgspec's RFC 3339 parser, then the check that the moment has a UTC
form. ``0001-01-01T00:00:00+01:00`` and ``9999-12-31T23:59:59-01:00`` are well-formed RFC 3339,
but their instants fall outside years 1 to 9999 once in UTC, where no ``datetime`` can hold them:
they are refused here, with a message, instead of raising ``OverflowError`` wherever they would
first be converted (a 500, or a projection stuck on the event).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final, Self

import msgspec

MAX_TEXT: Final = 64
"""Longest accepted spelling: any real moment fits, an echoed junk one stays small."""

NOT_A_MOMENT: Final = "must be an RFC 3339 date-time, such as 2026-11-20T18:04:00Z"
NO_ZONE: Final = "must include a timezone (Z or +hh:mm)"
NO_UTC_FORM: Final = "must fall between the years 1 and 9999 once converted to UTC"

_Zoned = Annotated[datetime, msgspec.Meta(tz=True)]


def in_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; ValueError when it has no zone or no UTC form."""
    if moment.tzinfo is None:
        raise ValueError(NO_ZONE)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(NO_UTC_FORM) from None


def parse_moment(raw: object) -> datetime:
    """An RFC 3339 date-time with a zone, in UTC; ValueError saying what is wrong otherwise."""
    if not isinstance(raw, str) or len(raw) > MAX_TEXT:
        raise ValueError(NOT_A_MOMENT)
    try:
        moment = msgspec.convert(raw, _Zoned, strict=True)
    except msgspec.ValidationError as error:
        raise ValueError(NO_ZONE if "timezone" in str(error) else NOT_A_MOMENT) from None
    return in_utc(moment)


class Moment(datetime):
    """The type of a Struct field that holds a moment (``parse_moment``), through
    ``values.dec_hook``; ``values.enc_hook`` writes it as msgspec writes any datetime in UTC
    (``2026-11-20T18:04:00Z``), one spelling per instant."""

    @classmethod
    def parse(cls, raw: object) -> Self:
        utc = parse_moment(raw)
        return cls.combine(utc.date(), utc.timetz())

    def plain(self) -> datetime:
        return datetime.combine(self.date(), self.timetz())
