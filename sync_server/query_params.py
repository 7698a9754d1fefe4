"""Reading query parameters: each bad one is refused with 400 ``invalid_parameter``, named."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

from starlette.requests import Request

from .problems import FieldProblem, Problem


def bad_parameter(parameter: str, message: str) -> Problem:
    return Problem(
        400,
        "invalid_parameter",
        f"{parameter}: {message}",
        errors=[FieldProblem(parameter, message)],
    )


def bounded_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    """An integer parameter in ``[low, high]``, ``default`` when absent."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = digits_in_range(raw, low, high)
    if value is None:
        raise bad_parameter(name, f"must be an integer from {low} to {high}")
    return value


def digits_in_range(raw: str, low: int, high: int) -> int | None:
    """``raw``, plain ASCII digits, as an integer in ``[low, high]`` (0 <= low); None otherwise.

    The length is checked before ``int``, which refuses more than 4300 digits with a ValueError
    (leading zeros count too: they are dropped first).
    """
    if not raw.isascii() or not raw.isdigit():
        return None
    digits = raw.lstrip("0") or "0"
    if len(digits) > len(str(high)):
        return None
    value = int(digits)
    return value if low <= value <= high else None


def refuse_unknown(
    request: Request, known: Iterable[str], *, repeatable: Iterable[str] = ()
) -> None:
    """A misspelt filter silently ignored would answer with everything: refuse it instead. So
    is a parameter given twice (which one would count?), but for the ``repeatable`` ones."""
    allowed = set(known)
    for name in request.query_params:
        if name not in allowed:
            listed = ", ".join(sorted(allowed)) or "none"
            raise bad_parameter(name, f"unknown parameter; this endpoint takes: {listed}")
    for name in allowed - set(repeatable):
        if len(request.query_params.getlist(name)) > 1:
            raise bad_parameter(name, "given more than once")


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def iso_date(raw: str) -> date:
    """A calendar date spelt ``YYYY-MM-DD``; ValueError otherwise (``date.fromisoformat`` alone
    would also take ``20261122`` and week dates such as ``2026-W47-1``)."""
    try:
        if _DATE.fullmatch(raw):
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise ValueError("must be a date in the form YYYY-MM-DD")
