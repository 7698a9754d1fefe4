"""Deciding workout ops: ``log_set`` commutes, bounded by the same limits as ``exercises``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from projections.workouts import find_exercise
from schemas.fields import MAX_EXERCISES, MAX_SETS
from schemas.results import FieldError

from .crud import Rules, commutative
from .decisions import EntityState, Rejected, invalid

ENTITY = "workout"


def _within_limits(state: EntityState, payload: Mapping[str, Any]) -> Rejected | None:
    exercises = state.data["exercises"]
    index = find_exercise(exercises, payload["exercise"])
    if index is None and len(exercises) >= MAX_EXERCISES:
        message = f"the workout already has {MAX_EXERCISES} exercises"
        return invalid([FieldError("data.exercise", message)], message)
    if index is not None and len(exercises[index]["sets"]) >= MAX_SETS:
        message = f"the exercise already has {MAX_SETS} sets"
        return invalid([FieldError("data.exercise", message)], message)
    return None


RULES = Rules(ENTITY, actions={"log_set": commutative(ENTITY, "log_set", _within_limits)})
