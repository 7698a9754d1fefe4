"""Reading Server-Sent Events as a client does (the WHATWG event-stream format), line by line,
from httpx's ``iter_lines`` / ``aiter_lines``; shared by the tests and ``bench/live.py``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Message:
    """One dispatched event, or one comment line (``event == ":"``, ``data`` its text)."""

    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class Parser:
    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> Message | None:
        """Take one line (without its end of line); return what it completes, if anything."""
        if line == "":
            if not self._data and not self._event:
                return None
            message = Message(self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return message
        if line.startswith(":"):
            return Message(":", line[1:].strip())
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None
