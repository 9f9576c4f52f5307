"""Project hygiene that users and CI rely on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import rfanalysis as rfa

ROOT = Path(__file__).resolve().parents[1]


def _fenced_commands(text: str) -> list[str]:
    blocks = text.split("```bash\n")[1:3]
    return [b.split("\n```")[0].strip() for b in blocks]


def test_readme_starts_with_run_and_test_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    run_cmd, test_cmd = _fenced_commands(readme)
    assert "pip install" in run_cmd and "rfanalysis " in run_cmd
    assert "pip install" in test_cmd and test_cmd.endswith("pytest")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in ci, "CI must run the README's test command verbatim"


def test_import_does_not_pull_heavy_dependencies():
    code = (
        "import sys, rfanalysis; bad = [m for m in ('matplotlib', 'click', 'torch') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names_exist_and_are_listed():
    for name in rfa.__all__:
        assert hasattr(rfa, name), name
    assert callable(rfa.plotting.plot_coverage)  # lazy submodule
