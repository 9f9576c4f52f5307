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

    Parameters
    ----------
    total : int
        Number of ticks the work takes.
    label : str
        Text in front of the bar.
    enabled : bool or None
        ``None``: only when ``stream`` is a terminal and the work runs longer than ``delay``.
    stream : file, optional
        Defaults to ``sys.stderr``.
    delay : float
        Seconds before an automatic bar first appears.
    """

    width = 30

    def __init__(
        self,
        total: int,
        label: str,
        enabled: bool | None = None,
        stream: TextIO | None = None,
        delay: float = 1.0,
    ) -> None:
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
            self.delay = delay
        else:
            self.delay = 0.0
        self.enabled = enabled
        self.total = max(1, total)
        self.label = label
        self.done = 0
        self.start = time.monotonic()
        self.last = -1.0
        self.shown = False

    def tick(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start < self.delay or (now - self.last < 0.1 and self.done < self.total):
            return
        self.last = now
        self.shown = True
        frac = min(1.0, self.done / self.total)
        filled = round(frac * self.width)
        bar = "#" * filled + " " * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {frac:4.0%}")
        self.stream.flush()

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
