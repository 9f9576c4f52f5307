"""Operations and their rules, one module per family (see :mod:`.base`).

Importing this package registers every built-in operation; the registry's order (windows and
blurred downsampling, dense layers, merges, global context) is the order in which spec files
and errors list them.
"""

# isort: skip_file
from .base import REGISTRY, Layer, OpError, TooSmall
from .windows import Conv, ConvTranspose, LocallyConnected, Pool, Upsample
from .blur import BlurPool
from .dense import Dense
from .merges import Add, Cat, Mul
from .context import AdaptivePool, GlobalPool, SpatialNorm
from .resample import Interpolate
from .attention import Attention

__all__ = [
    "REGISTRY",
    "AdaptivePool",
    "Add",
    "Attention",
    "BlurPool",
    "Cat",
    "Conv",
    "ConvTranspose",
    "Dense",
    "GlobalPool",
    "Interpolate",
    "Layer",
    "LocallyConnected",
    "Mul",
    "OpError",
    "Pool",
    "SpatialNorm",
    "TooSmall",
    "Upsample",
]
