"""Export and import of the log as NDJSON, on both backends and across them.

An export imported into an empty store gives back the same events (positions, hashes), the same
read tables (rows, versions, sync positions), the same idempotency keys, and passes verify. A
damaged file stops at its first bad line, named by number, and leaves the store empty, even when
the bad line comes after thousands of good ones.
"""

from __future__ import annotations

import io
import json
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Database, drop_database, fresh_database
from domain_harness import op, show_data
from histories import History
from op_strategies import PRELUDE

from event_store import (
    EventMetadata,
    EventStore,
    NewEvent,
    StreamId,
    chain,
    migrate,
    open_store,
    transfer,
)
from event_store.integrity import verify_chains
from projections import rebuild, tables
from schemas.events import build_registry
from sync_server import cli
from sync_server.services import MIGRATIONS


@pytest.fixture
def target(backend: str, tmp_path: Path) -> Iterator[EventStore]:
    """A second empty store on the same backend."""
    database = fresh_database(backend, tmp_path / "target")
    opened = open_store(database.url, data_dir=str(database.data_dir), registry=build_registry())
    migrate(opened, MIGRATIONS)
    yield opened
    opened.close()
    drop_database(database)


def exported(store: EventStore) -> bytes:
    out = io.BytesIO()
    transfer.export(store, out)
    return out.getvalue()


def stored_events(store: EventStore) -> list[tuple[Any, ...]]:
    with store.snapshot() as sql:
        rows = sql.fetchall(
            "SELECT position, owner, stream_type, stream_id, version, type, schema_version, "
            "recorded_at, hash FROM events ORDER BY position"
        )
    return [
        (*(str(v) if isinstance(v, uuid.UUID) else v for v in row[:8]), bytes(row[8]))
        for row in rows
    ]


def counts(store: EventStore) -> tuple[int, int, int]:
    with store.snapshot() as sql:
        return tuple(  # type: ignore[return-value]
            int(sql.fetchone(f"SELECT count(*) FROM {table}")[0])  # type: ignore[index]
            for table in ("events", "event_chains", "idempotency_keys")
        )


def histories(store: EventStore, users: int = 3) -> list[History]:
    made = []
    for _ in range(users):
        history = History(store)
        assert history.push(list(PRELUDE)) == ["applied"] * len(PRELUDE)
        update = op("cost", PRELUDE[2].id, "update", {"amount": "95.00"}, base=1)
        assert history.push([update]) == ["applied"]
        made.append(history)
    return made


def assert_same(source: EventStore, copy: EventStore) -> None:
    assert stored_events(copy) == stored_events(source)
    with source.snapshot() as a, copy.snapshot() as b:
        assert tables.load_all(b) == tables.load_all(a)
    assert rebuild.verify(copy) == []
    assert list(verify_chains(copy)) == []


def test_export_then_import_gives_back_the_same_log_and_read_tables(
    store: EventStore, target: EventStore
) -> None:
    made = histories(store)
    data = exported(store)
    imported = transfer.import_log(target, io.BytesIO(data))
    assert (imported.events, imported.keys) == (counts(store)[0], counts(store)[2])
    rebuild.rebuild(target)
    assert_same(store, target)
    # The op keys came along: an op retried against the restored store is a duplicate.
    restored = History(target)
    restored.owner, restored.origin = made[0].owner, made[0].origin
    assert restored.push(list(PRELUDE)) == ["duplicate"] * len(PRELUDE)
    # And the restored store goes on: positions continue after the imported ones.
    assert restored.push([op("show", uuid.uuid4(), "create", show_data())]) == ["applied"]
    assert rebuild.verify(target) == [] and list(verify_chains(target)) == []


@pytest.mark.parametrize("source, destination", [("sqlite", "postgres"), ("postgres", "sqlite")])
def test_an_export_moves_between_backends(source: str, destination: str, tmp_path: Path) -> None:
    databases = [
        fresh_database(source, tmp_path / "a"),
        fresh_database(destination, tmp_path / "b"),
    ]
    stores = [database.open() for database in databases]
    try:
        for opened in stores:
            migrate(opened, MIGRATIONS)
        histories(stores[0], users=2)
        transfer.import_log(stores[1], io.BytesIO(exported(stores[0])))
        rebuild.rebuild(stores[1])
        assert_same(stores[0], stores[1])
    finally:
        for opened, database in zip(stores, databases, strict=True):
            opened.close()
            drop_database(database)


def test_import_needs_an_empty_store(store: EventStore) -> None:
    histories(store, users=1)
    with pytest.raises(transfer.NotEmpty):
        transfer.import_log(store, io.BytesIO(exported(store)))


# -- damaged files ------------------------------------------------------------------------------


def many_events(store: EventStore, total: int) -> None:
    """``total`` events over two owners, appended straight to the store (no read rows)."""
    owners = [uuid.uuid4(), uuid.uuid4()]
    for batch in range(total // 250):
        events = [
            NewEvent(StreamId("show", uuid.uuid4()), "show.created", show_data())
            for _ in range(250)
        ]
        store.append(owners[batch % 2], events)


def damaged(lines: list[bytes], how: str) -> tuple[list[bytes], int]:
    """The file's lines damaged ``how``, and the 1-based number of the line that must be named."""
    late = len(lines) - 40  # an event line long after the first batch was written
    if how == "edited data":
        lines[late] = lines[late].replace(b'"Madrid"', b'"Paris"')
        return lines, late + 1
    if how == "removed event":
        del lines[late]
        return lines, late + 1  # the next event no longer follows the previous one
    if how == "not json":
        lines[late] = lines[late][:-10] + b"\n"
        return lines, late + 1
    if how == "repeated position":
        lines.insert(late, lines[late - 1])
        return lines, late + 1
    if how == "cut short":
        return lines[:late], late + 1
    if how == "unknown type":
        lines[late] = lines[late].replace(b'"show.created"', b'"show.renamed"')
        return lines, late + 1
    if how == "last event of an owner removed":
        del lines[-2]  # the end line now counts one event too many
        return lines, len(lines)
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    ["edited data", "removed event", "not json", "repeated position", "cut short",
     "unknown type", "last event of an owner removed"],
)  # fmt: skip
def test_a_damaged_file_names_its_first_bad_line_and_imports_nothing(
    store: EventStore, target: EventStore, how: str
) -> None:
    many_events(store, 3000)
    lines, bad = damaged(exported(store).splitlines(keepends=True), how)
    with pytest.raises(transfer.BadLine) as caught:
        transfer.import_log(target, io.BytesIO(b"".join(lines)))
    assert caught.value.line == bad, caught.value
    assert counts(target) == (0, 0, 0)


def test_the_cli_imports_and_names_a_bad_line(
    store: EventStore, database: Database, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    histories(store, users=1)
    path = tmp_path / "log.ndjson"
    for name, value in database.env().items():
        monkeypatch.setenv(name, value)
    if not database.url:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    assert cli.main(["export", "--output", str(path)]) == 0
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"Oslo"', b'"Bergen"')
    bad = tmp_path / "bad.ndjson"
    bad.write_bytes(b"".join(lines))
    capsys.readouterr()
    # Into an empty store of the same kind (a new data dir, or a new schema):
    empty = fresh_database(database.backend, tmp_path / "empty")
    try:
        for name, value in empty.env().items():
            monkeypatch.setenv(name, value)
        if empty.url:
            opened = empty.open()
            migrate(opened, MIGRATIONS)
            opened.close()
        assert cli.main(["import", str(bad)]) == 1
        assert "line 2: the hash does not match" in capsys.readouterr().err
        assert cli.main(["import", str(path)]) == 0
        assert "imported" in capsys.readouterr().out
        assert cli.main(["verify"]) == 0
    finally:
        drop_database(empty)


# -- lines that hash right but hold what the store cannot ---------------------------------------


def two_events_and_a_key(store: EventStore) -> list[bytes]:
    """The lines of an export of two owners' first events and an idempotency key."""
    events = [NewEvent(StreamId("show", uuid.uuid4()), "show.created", show_data())]
    store.append(uuid.uuid4(), events, idempotency_key="op-1")
    store.append(uuid.uuid4(), events)
    return exported(store).splitlines(keepends=True)


def forged(line: bytes, **changes: Any) -> bytes:
    """An owner's first event line with ``changes`` and its hash recomputed, so that only the
    import's own checks can catch it (a time with no UTC form has no hash: it keeps the old)."""
    event = {**json.loads(line), **changes}
    try:
        recorded = chain.instant(datetime.fromisoformat(event["recorded_at"]))
    except OverflowError:
        return json.dumps(event).encode() + b"\n"
    content = chain.Content(
        uuid.UUID(event["owner"]), event["stream_type"], uuid.UUID(event["stream_id"]),
        event["version"], event["type"], event["schema_version"], event["data"],
        EventMetadata(**event["metadata"]), recorded,
    )  # fmt: skip
    event["hash"] = chain.link(chain.GENESIS, content).hex()
    return json.dumps(event).encode() + b"\n"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"recorded_at": "0001-01-01T00:00:00+01:00"}, "between the years 1 and 9999"),
        ({"recorded_at": "9999-12-31T23:59:59-01:00"}, "between the years 1 and 9999"),
        ({"recorded_at": "1969-12-31T23:59:59Z"}, "before 1970-01-01"),
        ({"recorded_at": "0001-01-01T00:00:00Z"}, "before 1970-01-01"),
        ({"position": 2**63}, "<= 9223372036854775807"),
        ({"version": 2**31}, "<= 2147483647"),
    ],
)
def test_a_line_the_store_cannot_hold_is_named_even_when_its_hash_is_right(
    store: EventStore, target: EventStore, changes: dict[str, Any], message: str
) -> None:
    lines = two_events_and_a_key(store)
    lines[1] = forged(lines[1], **changes)
    with pytest.raises(transfer.BadLine) as caught:
        transfer.import_log(target, io.BytesIO(b"".join(lines)))
    assert caught.value.line == 2 and message in caught.value.message, caught.value
    assert counts(target) == (0, 0, 0)


def test_a_line_nested_too_deeply_is_named(store: EventStore, target: EventStore) -> None:
    lines = two_events_and_a_key(store)
    lines[2] = b'{"kind": "event", "data": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}\n"
    with pytest.raises(transfer.BadLine) as caught:
        transfer.import_log(target, io.BytesIO(b"".join(lines)))
    assert caught.value.line == 3 and "nested too deeply" in caught.value.message
    assert counts(target) == (0, 0, 0)


def test_a_key_recorded_at_a_time_with_no_utc_form_is_named(
    store: EventStore, target: EventStore
) -> None:
    lines = two_events_and_a_key(store)
    key = json.loads(lines[3])
    assert key["kind"] == "key"
    lines[3] = json.dumps({**key, "recorded_at": "0001-01-01T00:00:00+01:00"}).encode() + b"\n"
    with pytest.raises(transfer.BadLine) as caught:
        transfer.import_log(target, io.BytesIO(b"".join(lines)))
    assert caught.value.line == 4, caught.value
    assert counts(target) == (0, 0, 0)


def test_a_nul_is_refused_where_postgresql_cannot_store_it(
    store: EventStore, target: EventStore
) -> None:
    lines = two_events_and_a_key(store)
    lines[1] = forged(lines[1], data=show_data(city="Ma\u0000drid"))
    if target.backend == "postgres":
        with pytest.raises(transfer.BadLine) as caught:
            transfer.import_log(target, io.BytesIO(b"".join(lines)))
        assert caught.value.line == 2 and "NUL" in caught.value.message
        assert counts(target) == (0, 0, 0)
    else:  # SQLite stores it
        assert transfer.import_log(target, io.BytesIO(b"".join(lines))).events == 2


def test_positions_far_apart_cost_no_memory(store: EventStore, target: EventStore) -> None:
    # A bitmap up to the highest position would take 256 MB for this one line.
    lines = two_events_and_a_key(store)
    far = 2**31
    lines[2] = json.dumps({**json.loads(lines[2]), "position": far}).encode() + b"\n"
    tracemalloc.start()
    try:
        transfer.import_log(target, io.BytesIO(b"".join(lines)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20
    positions = [row[0] for row in stored_events(target)]
    assert len(positions) == 2 and positions[-1] == far
