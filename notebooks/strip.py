"""Strip outputs from notebooks before they are committed.

    python notebooks/strip.py               strip every notebook in notebooks/
    python notebooks/strip.py NB.ipynb ...  strip the given notebooks
    python notebooks/strip.py --check       list notebooks that need stripping; exit 1 if any

Stripping clears outputs and execution counts, drops the per-run metadata Jupyter and nbclient
record on cells (timings, collapsed/scrolled state), and reduces the notebook's
``language_info`` to the language name, so a notebook's bytes do not depend on who ran it or
with which Python. Cell ids, sources, tags and the kernelspec are kept. The result is written in
nbformat's own layout and validated.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

#: cell metadata written by running or viewing a notebook, not by its author
RUN_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Clear outputs and run metadata of ``nb`` in place and return it."""
    for cell in nb.cells:
        for key in RUN_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    language = nb.metadata.get("language_info", {}).get("name")
    if language is not None:
        nb.metadata["language_info"] = {"name": language}
    nbformat.validate(nb)
    return nb


def stripped_text(nb: nbformat.NotebookNode) -> str:
    """The file contents of ``nb`` after :func:`strip` (``nb`` itself is changed too)."""
    text = nbformat.writes(strip(nb))
    return text if text.endswith("\n") else text + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if unstripped")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(HERE.glob("*.ipynb"))
    dirty = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        clean = stripped_text(nbformat.reads(text, as_version=nbformat.NO_CONVERT))
        if clean != text:
            dirty.append(path)
            if not args.check:
                path.write_text(clean, encoding="utf-8")
    for path in dirty:
        print(f"{'needs stripping' if args.check else 'stripped'}: {path}")
    return 1 if args.check and dirty else 0


if __name__ == "__main__":
    sys.exit(main())
