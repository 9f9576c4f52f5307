"""The command line's contract for bad input, checked one way everywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def run_script(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed ``rfanalysis`` console script run as a user runs it (this checkout's
    package first on the path)."""
    script = Path(sys.executable).with_name("rfanalysis")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [str(script), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def assert_script_refuses(done, message: str, folder: Path | None = None) -> None:
    """The console script's side of :func:`assert_one_line_error`: exit status 2, nothing on
    stdout, one ``Error: ...`` line on stderr containing ``message``, no traceback, and,
    when ``folder`` is given, nothing written in it."""
    assert done.returncode == 2 and done.stdout == "", done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("Error: ") and message in line, line
    assert "Traceback" not in done.stderr
    if folder is not None:
        assert list(Path(folder).iterdir()) == []
