"""The torch importer: ``from_torch`` turns a ``torch.nn.Module`` into a network graph,
checked against the module itself (torch imported on use).

The pipeline (:mod:`.api`): :mod:`.tracing` captures the model (an fx trace, or, where fx
cannot trace it, a recording of the calls as it runs); :mod:`.output` finds the analysed maps
in the capture; :mod:`.interpreter` runs the capture with a :mod:`.converter` beside it that
applies the :mod:`.rules` (one module per operation family) to the :mod:`.units` of the
operations those maps depend on, on shapes where it can; :mod:`.verify` checks the result
against the module's own gradient.
"""

from .api import from_torch

__all__ = ["from_torch"]
