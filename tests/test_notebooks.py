"""The notebooks run from top to bottom in a fresh kernel, and are committed without outputs.

Each notebook runs in a temporary folder (anything it writes lands there) with this checkout's
``rfanalysis`` first on the kernel's path. A notebook that imports torch carries the torch
marker. Warnings inside the kernel are not errors there, so the run also fails on any output to
stderr, which is where the kernel shows them.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("*.ipynb"))

#: seconds a cell may take before the run fails (each runs in about a second)
CELL_TIMEOUT = 120


def _load_strip():
    spec = importlib.util.spec_from_file_location("notebooks_strip", FOLDER / "strip.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=nbformat.NO_CONVERT)


def _code(nb: nbformat.NotebookNode) -> list[str]:
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def _needs_torch(path: Path) -> bool:
    return any(re.search(r"^\s*(import|from) torch\b", src, re.M) for src in _code(_read(path)))


def _params() -> list:
    return [
        pytest.param(path, id=path.stem, marks=[pytest.mark.torch] if _needs_torch(path) else [])
        for path in NOTEBOOKS
    ]


def test_the_three_notebooks_are_there():
    names = {path.name for path in NOTEBOOKS}
    assert {"01_tour.ipynb", "02_influence.ipynb", "03_your_torch_model.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_without_outputs(path):
    nb = _read(path)
    nbformat.validate(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {index} has outputs; run strip.py"
            assert cell.execution_count is None, (
                f"{path.name} cell {index} has an execution count; run strip.py"
            )
        assert "execution" not in cell.metadata, f"{path.name} cell {index} has run timings"


def test_strip_check_passes_on_the_committed_notebooks():
    done = subprocess.run(
        [sys.executable, str(FOLDER / "strip.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_public_api_only(path):
    # DESIGN.md section 7: notebooks call the public API only
    for source in _code(_read(path)):
        assert not re.search(r"\b(rfanalysis|rfa)\._", source), source
        assert not re.search(r"from rfanalysis\._|import rfanalysis\._", source), source


@pytest.mark.parametrize("path", _params())
def test_notebook_runs_and_strips_back_to_the_committed_file(path, tmp_path):
    from nbclient import NotebookClient

    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    nb = _read(copy)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # the test session renders with Agg; a kernel draws inline, as in Jupyter
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute(env=env)  # raises CellExecutionError, with the traceback, on a failing cell

    stderr = [
        f"cell {index}: {out.text.strip()}"
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "stream" and out.name == "stderr"
    ]
    assert not stderr, "\n".join(stderr)
    shown = sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )
    assert shown > 0, "the notebook drew no figure inline"

    strip = _load_strip()
    assert strip.stripped_text(nb) == path.read_text(encoding="utf-8")


def test_strip_clears_an_executed_notebook(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("1 + 1")]
    )
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.9"}
    nb.cells[1].execution_count = 3
    nb.cells[1].outputs = [
        nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=3)
    ]
    nb.cells[1].metadata["execution"] = {"iopub.status.idle": "2024-01-01T00:00:00Z"}
    nb.cells[1].metadata["tags"] = ["keep"]
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, path)
    strip = _load_strip()
    script = str(FOLDER / "strip.py")

    check = subprocess.run([sys.executable, script, "--check", str(path)], capture_output=True)
    assert check.returncode == 1
    assert subprocess.run([sys.executable, script, str(path)]).returncode == 0
    cleaned = _read(path)
    assert cleaned.cells[1].outputs == []
    assert cleaned.cells[1].execution_count is None
    assert dict(cleaned.cells[1].metadata) == {"tags": ["keep"]}
    assert cleaned.metadata["language_info"] == {"name": "python"}
    assert cleaned.cells[1].id == nb.cells[1].id
    check = subprocess.run([sys.executable, script, "--check", str(path)], capture_output=True)
    assert check.returncode == 0
    assert strip.stripped_text(_read(path)) == path.read_text(encoding="utf-8")
