"""The mutation gate's own list (``tests/mutants.py``): every planted bug must still point at
one place in the package, so that a refactor that changes a line a mutant plants its bug in
fails here, in CI, rather than silently shrinking the gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from .mutants import MUTANTS, ROOT, locate


def test_enough_mutants_with_distinct_names():
    names = [m.name for m in MUTANTS]
    assert len(names) >= 30
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_snippet_occurs_once_in_the_package(mutant):
    _path, problem = locate(mutant, ROOT)
    assert problem == "", f"{mutant.name}: snippet {problem}"
    assert mutant.replacement != mutant.original
    # the selection it runs exists (a file, or a file::test)
    for selection in mutant.tests:
        file, _, test = selection.partition("::")
        assert (ROOT / file).is_file(), selection
        if test:
            assert f"def {test}(" in Path(ROOT / file).read_text(), selection
