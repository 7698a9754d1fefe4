"""The ``Idempotency-Key`` header of REST writes: a retried request answers what the first did.

A REST write is one op through push (``commands.py``), and push remembers the first outcome of
every op id, refusals included. So a key only has to name the op: the op's id is derived from
the key, a retry is the same op, push answers it ``duplicate`` with the first outcome, and
``commands.py`` answers that outcome again. A create without an ``id`` takes its entity id from
the key too, so that a retry names the entity the first request created.

Keys are scoped by user, as op ids are (the store keys both by owner). A key is for one request:
the first time, a digest of its method, path, ``If-Match`` and body is remembered under the key;
another request with the same key is refused with 422 before anything is pushed (as the IETF
draft "The Idempotency-Key HTTP Header Field" and Stripe do), so it can never be answered with
the outcome of a different write. Keys are never forgotten, like op ids.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final
from uuid import UUID, uuid5

import msgspec
from starlette.requests import Request

from event_store import EventStore

from .problems import FieldProblem, Problem

HEADER: Final = "Idempotency-Key"
MAX_LENGTH: Final = 255

# Fixed for good: a new namespace would make every retry of an earlier request a new op.
_OPS: Final = UUID("6f1c2a52-3d0e-4b8a-9a57-1d7c0e4f2b91")
_ENTITIES: Final = UUID("0b7e9d44-58a1-4c3f-8e26-7a9f3c15d6e0")

_STORE_PREFIX: Final = "rest:"
"""Where a key's request digest is remembered, apart from the ``op:`` keys of push."""


class _Claim(msgspec.Struct, frozen=True):
    request: str
    """The digest of the request the key was first sent with."""


_encode = msgspec.json.Encoder().encode
_decode_claim = msgspec.json.Decoder(_Claim).decode


@dataclass(frozen=True)
class IdempotencyKey:
    value: str

    @property
    def op_id(self) -> UUID:
        return uuid5(_OPS, self.value)

    def entity_id(self, owner: UUID) -> UUID:
        """The id a create without one gets. Ids are scoped by owner, like op ids; the owner is
        in it all the same, so that an id tells nothing of the key it came from to anyone else."""
        return uuid5(_ENTITIES, f"{owner}/{self.value}")


def key_of(request: Request) -> IdempotencyKey | None:
    """The request's key, or None without the header; 400 for a malformed one."""
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    if len(values) > 1:
        raise _malformed(f"send one {HEADER} header, not {len(values)}")
    value = values[0]
    if not 1 <= len(value) <= MAX_LENGTH or not all("!" <= char <= "~" for char in value):
        raise _malformed(f"must be 1 to {MAX_LENGTH} visible ASCII characters, without spaces")
    return IdempotencyKey(value)


def request_digest(method: str, path: str, base_version: int | None, body: object) -> str:
    """What makes two requests the same one: a retry must send the same method, path,
    ``If-Match`` and JSON body (member order and spacing aside)."""
    canonical = msgspec.json.encode([method, path, base_version, body], order="sorted")
    return hashlib.sha256(canonical).hexdigest()


def claim(store: EventStore, owner: UUID, key: IdempotencyKey, digest: str) -> None:
    """Tie ``key`` to the request ``digest`` names if it is new; 422 if it is tied to another.

    Its own owner transaction, before the push: two requests racing with one key are serialized
    by the owner lock, and the second of two different ones is refused whichever pushes first.
    """
    name = _STORE_PREFIX + key.value
    with store.transaction(owner) as tx:
        found = tx.recall([name]).get(name)
        if found is None:
            tx.remember({name: _encode(_Claim(digest))})
            return
    if _decode_claim(found.outcome).request != digest:
        message = "was sent before with another request; send a new key for a new request"
        raise Problem(
            422,
            "idempotency_key_reused",
            f"this {HEADER} {message} (the method, path, If-Match or body differ)",
            errors=[FieldProblem(HEADER, message)],
        )


def _malformed(message: str) -> Problem:
    return Problem(
        400, "invalid_header", f"{HEADER}: {message}", errors=[FieldProblem(HEADER, message)]
    )
