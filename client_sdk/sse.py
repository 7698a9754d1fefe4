"""Reading a Server-Sent Events stream (the WHATWG ``text/event-stream`` format), bytes in,
events and comments out. Pure: no I/O, no clock.

What the format says, and this parser does:

* lines end with CRLF, LF or CR (a CR at the end of one chunk and an LF at the start of the next
  are one line end); a byte order mark at the very start is dropped; text is UTF-8, with
  undecodable bytes replaced;
* ``field: value`` (one space after the colon is dropped; a line without a colon is a field with
  an empty value); ``event`` names the event, each ``data`` line adds a line to its data,
  ``id`` sets the last event id (unless it holds a NUL), ``retry`` (digits only) is the
  reconnection time in milliseconds; other fields are ignored;
* a blank line dispatches the event, unless no ``data`` came (then it is dropped); an event
  without a name is a ``message``;
* a line starting with ``:`` is a comment. The format says to ignore comments; they are
  returned here because the sync server uses them: ``: open`` says a stream is subscribed, and
  seeing it proves nothing between the client and the server buffers the stream.

The reason for a parser of our own rather than httpx's ``iter_lines``: that splits on every
line break Python knows (U+2028, form feed…), which the format does not, and knows nothing of
fields. httpx-sse parses fields correctly but drops comments, which this client needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

MAX_LINE: Final = 1 << 20
"""Bytes in one line at most; a stream that sends more without a line end is broken (or
hostile), and is refused rather than buffered without bound."""

_BOM: Final = "\ufeff"
_LINE_END: Final = re.compile(rb"\r\n|\r|\n")


class EventStreamError(ValueError):
    """The bytes are not an event stream this parser will hold (a line beyond ``MAX_LINE``)."""


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    data: str
    last_event_id: str = ""


@dataclass(frozen=True, slots=True)
class Comment:
    text: str


Item = Event | Comment


class EventStreamParser:
    """One stream's parser: feed it the stream's bytes in order, as they come."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self.retry: float | None = None
        """The reconnection time the stream asked for (``retry:``), in seconds; None if it
        never did."""
        self.last_event_id = ""
        self._pending = bytearray()
        self._after_cr = False
        self._started = False
        self._type = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[Item]:
        """Take the next bytes of the stream; return the events and comments they complete."""
        if not chunk:
            return []
        if self._after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF split across chunks
        items: list[Item] = []
        start = 0
        for end in _LINE_END.finditer(chunk):
            self._pending += chunk[start : end.start()]
            start = end.end()
            item = self.feed_line(self._take_line())
            if item is not None:
                items.append(item)
        self._after_cr = chunk.endswith(b"\r")
        self._pending += chunk[start:]
        if len(self._pending) > self.max_line:
            raise EventStreamError(f"a line longer than {self.max_line} bytes")
        return items

    def _take_line(self) -> str:
        if len(self._pending) > self.max_line:
            raise EventStreamError(f"a line longer than {self.max_line} bytes")
        line = self._pending.decode("utf-8", errors="replace")
        self._pending.clear()
        if not self._started:
            self._started = True
            line = line.removeprefix(_BOM)
        return line

    def feed_line(self, line: str) -> Item | None:
        """Take one line (without its line end); return the event or comment it completes."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return Comment(line[1:].removeprefix(" "))
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "event":
            self._type = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value) / 1000
        return None

    def _dispatch(self) -> Event | None:
        kind, data = self._type, self._data
        self._type, self._data = "", []
        if not data:
            return None
        return Event(kind or "message", "\n".join(data), self.last_event_id)
