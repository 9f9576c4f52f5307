"""The torch importer: ``from_torch`` turns a ``torch.nn.Module`` into a network graph,
checked against the module itself (torch imported on use).

The pipeline: :mod:`.tracing` captures the model (an fx trace, or a recording of the calls
as it runs), :mod:`.interpreter` runs the capture with a :mod:`.converter` beside it that
applies the :mod:`.rules` (one module per operation family) to every operation's
:mod:`.units`, :mod:`.api` picks the analysed output and prunes the graph to it, and
:mod:`.verify` checks the result against the module's own gradient.
"""

from .api import from_torch

__all__ = ["from_torch"]
