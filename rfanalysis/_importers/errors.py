"""The one public exception of every importer."""

from __future__ import annotations


class ConversionError(ValueError):
    """A model could not be turned into a network, or its network disagrees with the model.

    Raised by `from_torch` and `from_onnx` (and every entry point that converts a model) with
    one line that names the operation, the module or node, and what to do instead. It is a
    `ValueError`, so code that catches bad input catches it too.
    """
