"""Refuse work that would need more memory than the machine has, before allocating it."""

from __future__ import annotations

import os


def available_bytes() -> int:
    """Memory available to this process now (``MemAvailable`` on Linux, else physical RAM)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - exotic platforms
        return 1 << 62


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


#: requests below this size are never refused: the guard is for impossible sizes, and a
#: momentary dip in available memory on a busy machine must not fail a small job
ALWAYS_ALLOWED = 64 * 1024**2


def check(nbytes: float, what: str) -> None:
    """Raise ``ValueError`` if ``nbytes`` exceeds 90 % of the memory available now (requests
    under :data:`ALWAYS_ALLOWED` always pass)."""
    if nbytes <= ALWAYS_ALLOWED:
        return
    available = available_bytes()
    if nbytes > 0.9 * available:
        raise ValueError(
            f"{what} would need about {format_bytes(nbytes)} of memory but only "
            f"{format_bytes(available)} is available; use a smaller input size"
        )
