"""The SDK's Server-Sent Events parser, against the WHATWG event-stream format: fields, multi-line
data, comments, ``retry``, ``id``, every kind of line end, and bytes split anywhere."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client_sdk.sse import Comment, Event, EventStreamError, EventStreamParser, Item


def parse(*chunks: bytes) -> list[Item]:
    parser = EventStreamParser()
    return [item for chunk in chunks for item in parser.feed(chunk)]


SERVER_STREAM = (
    b": open\n\n"
    b'event: poke\ndata: {"cursor":"c1.a"}\n\n'
    b": heartbeat\n\n"
    b'event: bye\ndata: {"reason":"idle"}\n\n'
)
SERVER_ITEMS = [
    Comment("open"),
    Event("poke", '{"cursor":"c1.a"}'),
    Comment("heartbeat"),
    Event("bye", '{"reason":"idle"}'),
]


def test_the_sync_servers_stream() -> None:
    assert parse(SERVER_STREAM) == SERVER_ITEMS


@given(st.sampled_from([b"\n", b"\r\n", b"\r"]), st.lists(st.integers(0, 200), max_size=8))
def test_bytes_split_anywhere_parse_the_same(end: bytes, cuts: list[int]) -> None:
    stream = SERVER_STREAM.replace(b"\n", end)
    bounds = [0, *sorted(min(cut, len(stream)) for cut in cuts), len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    assert parse(*chunks) == SERVER_ITEMS


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_every_line_end(end: bytes) -> None:
    stream = end.join([b"event: poke", b"data: a", b"data: b", b"", b": c", b""])
    assert parse(stream) == [Event("poke", "a\nb"), Comment("c")]


def test_a_crlf_split_between_chunks_is_one_line_end() -> None:
    assert parse(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [Event("message", "a\nb")]


def test_only_the_formats_line_ends_split_lines() -> None:
    # str.splitlines (and httpx's iter_lines) would split at these.
    data = "a\u2028b\x0cc\x1cd\x85e"
    assert parse(f"data: {data}\n\n".encode()) == [Event("message", data)]


def test_field_syntax() -> None:
    stream = (
        b"data:no space\n"  # the space after the colon is optional
        b"data:  two spaces\n"  # only one is dropped
        b"data\n"  # no colon: the whole line is the field name, with an empty value
        b"data: with: colon\n"
        b"unknown: ignored\n"
        b"Event: case matters, so ignored\n"
        b"\n"
    )
    assert parse(stream) == [Event("message", "no space\n two spaces\n\nwith: colon")]


def test_an_event_without_data_is_not_dispatched_and_names_do_not_leak() -> None:
    assert parse(b"event: poke\n\ndata: x\n\n") == [Event("message", "x")]


def test_empty_data_is_still_an_event() -> None:
    assert parse(b"event: ping\ndata\n\n") == [Event("ping", "")]


def test_an_unfinished_event_is_not_dispatched() -> None:
    assert parse(b"event: poke\ndata: x\n") == []


def test_comments_keep_their_text() -> None:
    assert parse(b":\n:x\n:  two\n") == [Comment(""), Comment("x"), Comment(" two")]


def test_retry_sets_the_reconnection_time_only_when_it_is_digits() -> None:
    parser = EventStreamParser()
    parser.feed(b"retry: 2500\n")
    assert parser.retry == 2.5
    for bad in (b"1.5", b"-1", b"soon", b"", "\u0661".encode()):  # the last: Arabic-Indic 1
        parser.feed(b"retry: " + bad + b"\n")
        assert parser.retry == 2.5


def test_ids_are_remembered_across_events_unless_they_hold_a_nul() -> None:
    parser = EventStreamParser()
    items = parser.feed(b"id: 7\ndata: a\n\ndata: b\n\nid: x\x00y\ndata: c\n\nid\ndata: d\n\n")
    assert items == [
        Event("message", "a", "7"),
        Event("message", "b", "7"),
        Event("message", "c", "7"),
        Event("message", "d", ""),
    ]


def test_a_leading_byte_order_mark_is_dropped_once() -> None:
    bom = "\ufeff".encode()
    assert parse(bom + b"data: a\n\n" + bom + b"data: b\n\n") == [Event("message", "a")]
    assert parse(bom[:1], bom[1:] + b"data: a\n\n") == [Event("message", "a")]


def test_undecodable_bytes_are_replaced_and_characters_split_across_chunks_survive() -> None:
    snowman = "☃".encode()
    assert parse(b"data: \xff", b"\n\n") == [Event("message", "\ufffd")]
    assert parse(b"data: " + snowman[:1], snowman[1:] + b"\n\n") == [Event("message", "☃")]


def test_a_line_without_end_beyond_the_limit_is_refused() -> None:
    parser = EventStreamParser(max_line=16)
    assert parser.feed(b"data: 0123456789\n\n") == [Event("message", "0123456789")]
    with pytest.raises(EventStreamError):
        for _ in range(3):
            parser.feed(b"data: 0123456")
