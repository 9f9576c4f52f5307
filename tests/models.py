"""Real models for the tests: torchvision, importable with this project's CPU torch."""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest


def import_torchvision():
    """torchvision, importable with this project's CPU torch.

    ``import torchvision`` registers fake (meta) and autograd kernels for its C++ operators
    and fails where the installed build does not provide them ("operator torchvision::nms
    does not exist"). The models need none of those operators, so empty modules stand in
    for ``torchvision._meta_registrations`` and ``torchvision._autograd_registrations``
    before the import.
    """
    pytest.importorskip("torch")
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed (the published totals still apply)")
    for name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
        sys.modules.setdefault(name, types.ModuleType(name))
    import torchvision

    return torchvision
