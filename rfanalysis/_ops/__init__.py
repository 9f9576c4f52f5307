"""Operations and their rules, one module per family (see :mod:`.base`).

Importing this package registers every built-in operation; the registry's order (windows,
blurred downsampling, then dense layers, then merges) is the order in which spec files and
errors list them.
"""

# isort: skip_file
from .base import REGISTRY, Layer, OpError
from .windows import Conv, ConvTranspose, LocallyConnected, Pool, Upsample
from .blur import BlurPool
from .dense import Dense
from .merges import Add, Cat, Mul

__all__ = [
    "REGISTRY",
    "Add",
    "BlurPool",
    "Cat",
    "Conv",
    "ConvTranspose",
    "Dense",
    "Layer",
    "LocallyConnected",
    "Mul",
    "OpError",
    "Pool",
    "Upsample",
]
