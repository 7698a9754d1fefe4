"""Storage failures over HTTP: a write kept waiting on a lock beyond ``SYNC_LOCK_TIMEOUT``, or
one that loses a race the owner lock did not cover, answers 503 problem+json with Retry-After
(nothing was written: the same batch may simply be sent again), never 500, and the server goes
on serving."""

from __future__ import annotations

import uuid

from api import assert_problem, op, show, sign_up, uid
from conftest import ServerFactory

from event_store import NewEvent, StreamId


def test_a_write_that_loses_a_race_answers_503_and_writes_nothing(
    server_factory: ServerFactory,
) -> None:
    server = server_factory()
    with server.client() as http:
        device = sign_up(http)
        show_id = uid()
        device.push([op("show", show_id, "create", show())])
        # What a race the owner lock did not cover leaves: another writer appended to the show
        # behind the read table's back, so the row says version 1 and the log says 2.
        with server.database.open() as store:
            stream = StreamId("show", uuid.UUID(show_id))
            store.append(uuid.UUID(device.user_id), [NewEvent(stream, "show.updated", {})])
        response = device.push_raw([op("show", show_id, "update", {"city": "Lyon"}, base=1)])
        assert_problem(response, 503, "concurrent_write")
        assert int(response.headers["retry-after"]) >= 1
        assert device.state()[("show", show_id)]["data"]["city"] == "Madrid"
        # The server goes on serving.
        assert [r["status"] for r in device.push([op("show", uid(), "create", show())])] == [
            "applied"
        ]
