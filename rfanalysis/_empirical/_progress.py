"""A small progress bar on stderr for long computations.

Shown only when asked (``enabled=True``) or, by default, when stderr is a terminal and the
work has already taken longer than ``delay`` seconds; never when stderr is piped.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Count ``total`` ticks and draw ``label [####    ] 42%`` on ``stream``.

    With ``items`` (e.g. ``"images"``) the line also counts what the ticks carried
    (``tick(items=32)``): ``label [####    ] 42% 420 images``; without a known total
    (``total=None``, a stream) it shows the count alone.

    Parameters
    ----------
    total : int or None
        Number of ticks the work takes (None: unknown).
    label : str
        Text in front of the bar.
    enabled : bool or None
        ``None``: only when ``stream`` is a terminal and the work runs longer than ``delay``.
    stream : file, optional
        Defaults to ``sys.stderr``.
    delay : float
        Seconds before an automatic bar first appears.
    items : str, optional
        Name of what the ticks carry, counted on the line.
    """

    width = 30

    def __init__(
        self,
        total: int | None,
        label: str,
        enabled: bool | None = None,
        stream: TextIO | None = None,
        delay: float = 1.0,
        items: str | None = None,
    ) -> None:
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
            self.delay = delay
        else:
            self.delay = 0.0
        self.enabled = enabled
        self.total = None if total is None else max(1, total)
        self.label = label
        self.items = items
        self.count = 0
        self.done = 0
        self.start = time.monotonic()
        self.last = -1.0
        self.shown = False
        self.drawn = (0, 0)

    def tick(self, n: int = 1, items: int = 0) -> None:
        self.done += n
        self.count += items
        if not self.enabled:
            return
        now = time.monotonic()
        finished = self.total is not None and self.done >= self.total
        if now - self.start < self.delay or (now - self.last < 0.1 and not finished):
            return
        self.last = now
        self._draw()

    def _draw(self) -> None:
        self.shown = True
        self.drawn = (self.done, self.count)
        count = f" {self.count:,} {self.items}" if self.items else ""
        if self.total is None:
            self.stream.write(f"\r{self.label}{count}")
        else:
            frac = min(1.0, self.done / self.total)
            filled = round(frac * self.width)
            bar = "#" * filled + " " * (self.width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {frac:4.0%}{count}")
        self.stream.flush()

    def close(self) -> None:
        if self.shown:
            if self.drawn != (self.done, self.count):  # the last ticks came too fast to draw
                self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
