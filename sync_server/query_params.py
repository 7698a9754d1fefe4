"""Reading query parameters: each bad one is refused with 400 ``invalid_parameter``, named."""

from __future__ import annotations

from collections.abc import Iterable

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
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise bad_parameter(name, f"must be an integer from {low} to {high}")
    return int(raw)


def refuse_unknown(request: Request, known: Iterable[str]) -> None:
    """A misspelt filter silently ignored would answer with everything: refuse it instead."""
    allowed = set(known)
    for name in request.query_params:
        if name not in allowed:
            listed = ", ".join(sorted(allowed)) or "none"
            raise bad_parameter(name, f"unknown parameter; this endpoint takes: {listed}")
    for name in allowed:
        if len(request.query_params.getlist(name)) > 1:
            raise bad_parameter(name, "given more than once")
