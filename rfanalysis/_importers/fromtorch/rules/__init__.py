"""The torch importer's rules, one module per operation family; importing this package
registers them all (see :mod:`.base`)."""

# isort: skip_file
from .base import Call, Rules
from . import windows, layout, pointwise, reductions, products, attention  # noqa: F401

__all__ = ["Call", "Rules"]
