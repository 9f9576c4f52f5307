"""The command line's contract for bad input, checked one way everywhere."""

from __future__ import annotations

from pathlib import Path


def assert_one_line_error(result, message: str, folder: Path | None = None) -> None:
    """Exit status 2, one line ``Error: ...`` containing ``message``, no traceback, and, when
    ``folder`` is given, nothing written in it."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ") and message in lines[0], lines[0]
    assert "Traceback" not in result.output
    if folder is not None:
        assert list(Path(folder).iterdir()) == []
