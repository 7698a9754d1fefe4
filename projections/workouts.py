"""Projector of the ``workouts`` read table.

Derived: ``total_sets``, ``total_reps`` and ``volume_kg`` = the sum of reps * weight, pounds
converted at the exact international definition (1 lb = 0.45359237 kg), summed exactly and
rounded half up to two places only at the end, sent as a string.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, localcontext
from typing import Any

from event_store.events import RecordedEvent
from schemas.entities import writable_fields

from . import rows
from .rows import ReadRow

ENTITY = "workout"
DERIVED = ("total_sets", "total_reps", "volume_kg")
KG_PER_LB = Decimal("0.45359237")


def created(event: RecordedEvent) -> ReadRow:
    hidden = rows.with_field_versions({}, writable_fields(ENTITY), event.version)
    return rows.created(event, _with_derived(event.data), hidden)


def updated(row: ReadRow, event: RecordedEvent) -> ReadRow:
    hidden = rows.with_field_versions(row.hidden, event.data, event.version)
    return rows.changed(row, event, _with_derived({**row.data, **event.data}), hidden, own=True)


def deleted(row: ReadRow, event: RecordedEvent) -> ReadRow:
    return rows.tombstone(row, event)


def set_logged(row: ReadRow, event: RecordedEvent) -> ReadRow:
    """Append the set to the first exercise of that name, or to a new exercise at the end."""
    name = event.data["exercise"]
    new_set = {key: event.data[key] for key in ("reps", "weight", "unit")}
    exercises = [{**exercise, "sets": list(exercise["sets"])} for exercise in row.data["exercises"]]
    index = find_exercise(exercises, name)
    if index is None:
        exercises.append({"name": name, "sets": [new_set]})
    else:
        exercises[index]["sets"].append(new_set)
    hidden = rows.with_field_versions(row.hidden, ["exercises"], event.version)
    data = _with_derived({**row.data, "exercises": exercises})
    return rows.changed(row, event, data, hidden, own=True)


def find_exercise(exercises: Sequence[Mapping[str, Any]], name: str) -> int | None:
    """Where ``log_set`` writes: the first exercise with exactly that name (None: a new one)."""
    return next((i for i, exercise in enumerate(exercises) if exercise["name"] == name), None)


def _with_derived(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {**fields, **derived(fields["exercises"])}


def derived(exercises: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    total_sets = total_reps = 0
    with localcontext(rows.DECIMAL):
        volume = Decimal(0)
        for exercise in exercises:
            for set_ in exercise["sets"]:
                total_sets += 1
                total_reps += set_["reps"]
                weight = Decimal(set_["weight"])
                if set_["unit"] == "lb":
                    weight *= KG_PER_LB
                volume += set_["reps"] * weight
        return {"total_sets": total_sets, "total_reps": total_reps, "volume_kg": rows.money(volume)}
