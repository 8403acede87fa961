"""Progress bars of the CLI's long jobs, and the bounded poll loop that drives them.

The bar goes to stderr so that ``--json`` or a pipe reading stdout gets only the
result. On a terminal one line is redrawn with ``\\r`` (a log file full of redraws is
unreadable); anywhere else a plain line is printed each time another 10% is reached,
so a CI log shows that the job moves without a line per poll.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO, TypeVar

from bitdust.util.units import format_size

T = TypeVar("T")

BAR_WIDTH = 30
LINE_STEP = 10
MIN_INTERVAL = 0.2
MAX_INTERVAL = 0.5


def render_bar(label: str, percent: float, done_bytes: int | None = None, total_bytes: int | None = None,
               rate: float | None = None, width: int = BAR_WIDTH) -> str:
    """One line: ``backup [#########-----]  45.0%  1.2 MB of 2.5 MB  3.4 MB/s``.

    ``percent`` is clamped to 0-100 because the daemon's figure can pass 100 by a
    rounding hair or be missing (0) before the job knows its size.
    """
    percent = max(0.0, min(100.0, float(percent)))
    filled = round(width * percent / 100.0)
    parts = [f"{label} [{'#' * filled}{'-' * (width - filled)}] {percent:5.1f}%"]
    if done_bytes is not None and total_bytes:
        parts.append(f"{format_size(done_bytes)} of {format_size(total_bytes)}")
    elif done_bytes:
        parts.append(format_size(done_bytes))
    if rate is not None and rate > 0:
        parts.append(f"{format_size(rate)}/s")
    return "  ".join(parts)


class ProgressBar:
    """Draws one job's progress on ``stream``; :meth:`close` ends the line on a TTY."""

    def __init__(self, label: str, stream: TextIO | None = None, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock = clock
        self.started = clock()
        self._last_line = ""
        self._last_step = -1
        self._width = 0

    def update(self, percent: float, done_bytes: int | None = None, total_bytes: int | None = None) -> None:
        elapsed = self.clock() - self.started
        rate = done_bytes / elapsed if done_bytes and elapsed > 0 else None
        line = render_bar(self.label, percent, done_bytes, total_bytes, rate)
        if self.tty:
            if line != self._last_line:
                # pad with spaces so a shorter line wipes the end of a longer one
                self.stream.write("\r" + line.ljust(self._width))
                self.stream.flush()
                self._width = max(self._width, len(line))
                self._last_line = line
            return
        step = int(max(0.0, min(100.0, percent)) // LINE_STEP)
        if step > self._last_step:
            self._last_step = step
            self.stream.write(line + "\n")
            self.stream.flush()

    def finish(self, done_bytes: int | None = None, total_bytes: int | None = None) -> None:
        """Draw 100% and end the line: a job that ended between two polls still shows
        it reached the end."""
        self.update(100.0, done_bytes, total_bytes)
        self.close()

    def close(self) -> None:
        if self.tty and self._last_line:
            self.stream.write("\n")
            self.stream.flush()
        self._last_line = ""


def bounded_interval(value: float) -> float:
    """The poll interval, kept within 0.2-0.5 s: faster only loads the daemon, slower
    makes a short job feel stuck."""
    return max(MIN_INTERVAL, min(MAX_INTERVAL, value))


class WaitTimeout(Exception):
    """A poll loop passed its deadline; the message says what it waited for."""


def poll_until(check: Callable[[], T | None], timeout: float, interval: float, what: str,
               sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic) -> T:
    """Call ``check`` until it returns something other than None, at most ``timeout`` s."""
    deadline = clock() + timeout
    interval = bounded_interval(interval)
    while True:
        result = check()
        if result is not None:
            return result
        if clock() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}")
        sleep(interval)
