"""Checking an op's ``data`` against the entity's Struct, into canonical JSON-ready form.

Fields are checked one by one (rather than converting the whole dict at once) so that every
invalid field is reported in one answer, each with its own path: an offline client fixing a
queued op should not have to discover its mistakes one round trip at a time.

Canonical form: dates ``YYYY-MM-DD``, times RFC 3339 in UTC, UUIDs as strings, decimals as
canonical strings (see ``values.py``); on create every field is present, defaults filled in and
absent optional fields as ``null``, so that a read row always has the same keys.
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import msgspec

from .entities import ACTION_PAYLOADS, CREATE_ONLY, FIELDS
from .fields import NO_NUL, NOT_BLANK
from .results import FieldError
from .values import dec_hook, enc_hook

Clean = dict[str, Any]

MAX_ERRORS = 100
"""Errors listed per payload at most; the last one listed then says how many more there are."""


def validate_fields(
    entity: str, data: Mapping[str, Any], *, partial: bool
) -> Clean | list[FieldError]:
    """The canonical fields of a create (``partial=False``) or an update (``partial=True``).

    An update may carry any non-empty subset of the writable fields, minus the create-only ones.
    ``entity`` must be known (``KeyError`` otherwise: deciding checks it first).
    """
    refused = CREATE_ONLY.get(entity, {}) if partial else {}
    return _validate(FIELDS[entity], data, partial=partial, refused=refused)


def validate_action(entity: str, action: str, data: Mapping[str, Any]) -> Clean | list[FieldError]:
    """The canonical payload of an action such as ``record_sale`` (``KeyError`` if unknown)."""
    return _validate(ACTION_PAYLOADS[(entity, action)], data, partial=False, refused={})


def _validate(
    cls: type[msgspec.Struct],
    data: Mapping[str, Any],
    *,
    partial: bool,
    refused: Mapping[str, str],
) -> Clean | list[FieldError]:
    if not partial and not refused:
        # The common case, a valid payload, in one conversion; only an invalid one is checked
        # field by field below, to report every problem with its path.
        try:
            whole = msgspec.convert(data, cls, strict=True, dec_hook=dec_hook)
        except msgspec.ValidationError:
            pass
        else:
            built = msgspec.to_builtins(whole, enc_hook=enc_hook)
            assert isinstance(built, dict)
            return built
    values, errors = _members("data", data, cls, partial=partial, refused=refused)
    if partial and not data:
        errors.append(FieldError("data", "must contain at least one field to change"))
    if len(errors) > MAX_ERRORS:
        # Every error is kept with the op's outcome, for its retries: a payload of thousands of
        # bad nested values must not make an answer, or a stored outcome, many times its size.
        more = len(errors) - MAX_ERRORS + 1
        errors[MAX_ERRORS - 1 :] = [FieldError("data", f"and {more} more problems not listed")]
    if errors:
        return errors
    if partial:
        return {key: msgspec.to_builtins(value, enc_hook=enc_hook) for key, value in values.items()}
    # Building the Struct fills the defaults and runs its __post_init__ normalization.
    built = msgspec.to_builtins(cls(**values), enc_hook=enc_hook)
    assert isinstance(built, dict)
    return built


def _every_error(path: str, raw: Any, type_: Any, exc: msgspec.ValidationError) -> list[FieldError]:
    """Every problem of ``raw`` as a ``type_`` (whose conversion raised ``exc``), each with its
    path. msgspec stops at the first: a list is checked item by item and an object member by
    member, as far down as the problems go, so that a workout with three bad sets is answered
    with three errors. What is wrong with the whole (a list too long, a rule across members)
    is ``exc``'s one error."""
    message, _, where = str(exc).partition(_AT)
    # Inside (msgspec names a place), or a member of this object that is unknown or missing
    # (msgspec names no place for those at the top of what it converts): look at the parts.
    if where or _MEMBER.fullmatch(message):
        inner = _unwrapped(type_)
        if isinstance(raw, list) and typing.get_origin(inner) is list:
            (item,) = typing.get_args(inner)
            found = [
                error
                for index, value in enumerate(raw)
                for error in _errors_of(f"{path}[{index}]", value, item)
            ]
            if found:
                return found
        elif isinstance(raw, dict) and _is_struct(inner):
            _, found = _members(path, raw, inner)
            if found:
                return found
    return [field_error(path, exc)]


def _errors_of(path: str, raw: Any, type_: Any) -> list[FieldError]:
    try:
        msgspec.convert(raw, type_, strict=True, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        return _every_error(path, raw, type_, exc)
    return []


def _members(
    path: str,
    raw: Mapping[str, Any],
    cls: type[msgspec.Struct],
    *,
    partial: bool = False,
    refused: Mapping[str, str] = MappingProxyType({}),
) -> tuple[dict[str, Any], list[FieldError]]:
    """The members of ``raw`` converted one by one to ``cls``'s fields, and every problem
    with them: a ``refused`` member, an unknown one, a missing one (unless ``partial``), and
    each bad value's every problem (``_every_error``)."""
    fields = _fields_of(cls)
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    for key, value in raw.items():
        where = f"{path}.{key}"
        info = fields.get(key)
        if key in refused:
            errors.append(FieldError(where, refused[key]))
        elif info is None:
            errors.append(FieldError(where, "unknown field"))
        else:
            try:
                values[key] = msgspec.convert(value, info.type, strict=True, dec_hook=dec_hook)
            except msgspec.ValidationError as exc:
                errors += _every_error(where, value, info.type, exc)
    if not partial:
        errors.extend(
            FieldError(f"{path}.{name}", "is required")
            for name, info in fields.items()
            if info.required and name not in raw
        )
    return values, errors


def _unwrapped(type_: Any) -> Any:
    """``type_`` without its ``Annotated`` constraints (checked on the whole already)."""
    while typing.get_origin(type_) is typing.Annotated:
        type_ = typing.get_args(type_)[0]
    return type_


def _is_struct(type_: Any) -> bool:
    return isinstance(type_, type) and issubclass(type_, msgspec.Struct)


@functools.cache
def _fields_of(cls: type[msgspec.Struct]) -> Mapping[str, msgspec.structs.FieldInfo]:
    # msgspec.structs.fields resolves the class's annotations (forward references compiled and
    # evaluated) on every call: once per op it was the largest cost of a push.
    return MappingProxyType({info.name: info for info in msgspec.structs.fields(cls)})


_AT = " - at `$"
_MEMBER = re.compile(r"Object (contains unknown|missing required) field `(.*)`")

# msgspec's wording, rephrased for people who never saw a type annotation.
_REPHRASE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Expected `str` of length <= (\d+)"), r"must be at most \1 characters"),
    (re.compile(r"Expected `str` of length >= (\d+)"), r"must be at least \1 characters"),
    (
        re.compile(r"Expected `str` matching regex " + re.escape(repr(NO_NUL))),
        "must not contain NUL characters",
    ),
    (
        re.compile(r"Expected `str` matching regex " + re.escape(repr(NOT_BLANK))),
        "must not be blank or contain NUL characters",
    ),
    (re.compile(r"Expected `array` of length <= (\d+)"), r"must have at most \1 items"),
    (re.compile(r"Expected `array` of length >= (\d+)"), r"must have at least \1 items"),
    (re.compile(r"Expected `int` >= (-?\d+)"), r"must be >= \1"),
    (re.compile(r"Expected `int` <= (-?\d+)"), r"must be <= \1"),
    (re.compile(r"Invalid RFC3339 encoded date"), "must be a date in the form YYYY-MM-DD"),
    (re.compile(r"Invalid RFC3339 encoded datetime"), "must be an RFC 3339 date-time"),
    (re.compile(r"Expected `datetime` with a timezone.*"), "must include a timezone (Z or +hh:mm)"),
    (re.compile(r"Invalid enum value '(.*)'"), r"'\1' is not one of the allowed values"),
)


def field_error(prefix: str, exc: msgspec.ValidationError) -> FieldError:
    """``Expected `int`, got `str` - at `$[0].sets[1].reps``` under ``data.exercises``: the
    path of what is wrong, under ``prefix``, and what is wrong with it in plain words."""
    message, _, where = str(exc).partition(_AT)
    suffix = where.rstrip("`")
    # msgspec reports an unknown or missing member at its object: put the member in the path,
    # the way top-level fields are reported.
    member = _MEMBER.fullmatch(message)
    if member:
        suffix = f"{suffix}.{member.group(2)}"
        message = "unknown field" if member.group(1) == "contains unknown" else "is required"
    for pattern, replacement in _REPHRASE:
        if pattern.fullmatch(message):
            message = pattern.sub(replacement, message)
            break
    return FieldError(prefix + suffix, message)
