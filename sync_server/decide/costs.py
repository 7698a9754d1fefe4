"""Deciding cost ops: the show a cost names must exist, be live, and be the owner's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from schemas.ops import Op
from schemas.results import INVALID_REFERENCE, FieldError

from .crud import Rules
from .decisions import References, Rejected, rejected


def _check(op: Op, values: Mapping[str, Any], refs: References) -> Rejected | None:
    if "show_id" not in values:
        return None
    show = refs.shows.get(UUID(values["show_id"]))
    # Another owner's show is never loaded, so it is answered exactly like a missing one and
    # its existence does not leak.
    if show is None:
        reason = "no such show"
    elif show.deleted:
        reason = "the show is deleted"
    else:
        return None
    return rejected(INVALID_REFERENCE, reason, [FieldError("data.show_id", reason)])


RULES = Rules("cost", check=_check)
