"""Configuration for every collected item: the tests, and the doctests of the package and of
README.md and WRITEUP.md."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _numpy_print_options():
    """Each test and doctest sees numpy's print options as it found them: a library imported
    by one test (ultralytics sets a float formatter at import) must not change how the
    arrays of a later doctest print."""
    saved = np.get_printoptions()
    yield
    np.set_printoptions(**saved)
