"""Shared test configuration.

Torch tests are the autograd oracle: they are never skipped silently. If torch is missing,
selecting them is an error that says how to install it or deselect them explicitly.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

# figures render off-screen; set before anything imports matplotlib (rfanalysis never does)
os.environ["MPLBACKEND"] = "Agg"

#: doctests that run torch (doctests cannot carry markers themselves)
TORCH_DOCTESTS = ("rfanalysis._importers.fromtorch.",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.DoctestItem) and item.name.startswith(TORCH_DOCTESTS):
            item.add_marker(pytest.mark.torch)
    needs_torch = [item for item in items if item.get_closest_marker("torch")]
    if needs_torch and importlib.util.find_spec("torch") is None:
        raise pytest.UsageError(
            f"{len(needs_torch)} selected tests need PyTorch (the autograd oracle): "
            "pip install 'rfanalysis[torch]', or deselect them with -m 'not torch'"
        )


@pytest.fixture(autouse=True)
def _close_figures():
    """Every test must close the figures it opens."""
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        open_figures = plt.get_fignums()
        plt.close("all")
        assert not open_figures, f"test left {len(open_figures)} figure(s) open"


@pytest.fixture
def drawn(monkeypatch):
    """The figures the CLI renders, captured on their way to bytes."""
    from rfanalysis import _style

    figures = []
    render = _style.figure_bytes

    def capture(fig, fmt, dpi=None):
        figures.append(fig)
        return render(fig, fmt, dpi)

    monkeypatch.setattr(_style, "figure_bytes", capture)
    return figures
