"""Progress of a long command (rebuild, verify, import): events done, events/s, time left.

On a terminal, one line redrawn in place with a bar; otherwise (a log file, a pipe) a plain
line every few seconds, so that logs stay readable.
"""

from __future__ import annotations

import time
from typing import TextIO

_WIDTH = 24


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    def __init__(self, label: str, stream: TextIO, *, every: float = 5.0) -> None:
        self.label = label
        self.stream = stream
        self.terminal = stream.isatty()
        self.every = every if not self.terminal else 0.1
        self.started = time.monotonic()
        self._last = 0.0
        self._shown = False
        self._shown_at = (-1, -1)

    def line(self, done: int, total: int) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = done / elapsed
        total = max(total, done)
        left = (total - done) / rate if rate else 0.0
        text = f"{self.label}: {done:,}/{total:,} events  {rate:,.0f} events/s  {_clock(left)} left"
        if self.terminal:
            filled = int(_WIDTH * done / total) if total else _WIDTH
            text = (
                f"{self.label} [{'#' * filled}{'.' * (_WIDTH - filled)}] " + text.split(": ", 1)[1]
            )
        return text

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if (now - self._last < self.every and done < total) or (done, total) == self._shown_at:
            return
        self._last, self._shown_at = now, (done, total)
        if self.terminal:
            self.stream.write("\r\x1b[K" + self.line(done, total))
        else:
            self.stream.write(self.line(done, total) + "\n")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self.terminal and self._shown:
            self.stream.write("\n")
            self.stream.flush()
