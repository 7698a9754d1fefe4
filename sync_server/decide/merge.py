"""The merge policy for ``update`` and ``delete`` (PROTOCOL.md, "Merge policy").

Let v be the entity's version and b the op's ``base_version``. b == v applies. b < v applies an
update when none of its fields changed after b (another device edited other fields: a
field-level merge), and a delete only when nothing changed after b. Otherwise the op conflicts
with ``version_mismatch``, naming the fields that moved. A missing, negative or future b is a
malformed op: ``validation_failed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from schemas.results import FieldError

from .decisions import Conflicted, EntityState, Rejected, conflicted, invalid

_ABSENT = object()


def base_version_error(base: int | None) -> FieldError | None:
    """What is wrong with ``base_version`` on its own, before looking at the entity."""
    if base is None:
        return FieldError("base_version", "is required for update and delete")
    if base < 0:
        return FieldError("base_version", "must be >= 0")
    return None


def ahead_of(state: EntityState, base: int) -> Rejected | None:
    """A base the entity never reached: the client invented it, retrying cannot help."""
    if base > state.version:
        return invalid(
            [FieldError("base_version", f"is ahead of the entity's version {state.version}")],
            "base_version is ahead of the entity",
        )
    return None


def changed_since(state: EntityState, base: int, fields: Iterable[str] | None = None) -> list[str]:
    """The fields (all writable ones by default) changed by some event after version ``base``."""
    names = state.field_versions if fields is None else fields
    return sorted(name for name in names if state.field_versions.get(name, 0) > base)


def update_conflict(state: EntityState, base: int, fields: Iterable[str]) -> Conflicted | None:
    overlap = changed_since(state, base, fields)
    return conflicted("version_mismatch", state, overlap) if overlap else None


def delete_conflict(state: EntityState, base: int) -> Conflicted | None:
    return (
        conflicted("version_mismatch", state, changed_since(state, base))
        if base < state.version
        else None
    )


def changes(clean: Mapping[str, Any], state: EntityState) -> dict[str, Any]:
    """The fields of an update whose value differs from the current one: the event's data."""
    return {key: value for key, value in clean.items() if state.data.get(key, _ABSENT) != value}
