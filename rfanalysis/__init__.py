"""rfanalysis: exact receptive fields, route counts and border coverage of CNNs.

A pixel near the middle of a deep unit's receptive field reaches that unit along many routes,
a border pixel along few. This package counts them exactly.

Layers (frozen, hashable; an int means the same on every spatial axis)
    Conv, LocallyConnected, Pool, BlurPool (blurred downsampling), ConvTranspose, Upsample,
    Dense; merges Add, Mul, Cat; global context GlobalPool, AdaptivePool, SpatialNorm;
    resampling Interpolate; Attention (global, windowed, shifted windows)
Networks (graphs: the input, then nodes that apply one layer to earlier nodes)
    Network (from a sequence with Residual, Concat and Parallel blocks, or from the output of
    a graph built with Input: ``x = Input(); y = Add()(x, Conv(3, padding=1)(x))``), Node,
    Value
Specs
    parse (compact grammar, e.g. ``"conv7s2p3,maxpool3s2p1,res(conv3p1,conv3p1)*2"``),
    load / save (JSON or TOML spec files), zoo.names / zoo.get
Geometry
    output_shape, geometry (per-layer table), receptive_field, connections (every tap of a
    chain's layers along one axis)
Route counting
    routes (every input pixel to one unit), coverage (summed over all output units);
    float64, ``exact=True`` (Python ints) or ``log=True`` (log10)
Theory
    ``rfanalysis.theory``: multinomial rows, the Gaussian limit (variance
    ``sum J^2 d^2 (k^2 - 1) / 12``), edge/centre ratios, limit profiles of repeated layers
Comparison
    compare (an analytic route map against an empirical influence map: correlation, total
    variation, KL, centre-of-mass shift, 50 %/95 % radii, sigma per axis) -> Comparison
Blind spots
    blind_spots (zero-coverage pixels, uneven padding, mirror asymmetry, nearby clean input
    sizes) -> BlindSpotReport (with UnevenPadding and SizeSearch entries)
Empirical influence
    influence (mean |d y_unit / d x| of a network with real weights, numpy or torch; also a
    user's torch module, over one array of inputs or a DataLoader's stream of batches),
    InfluenceWarning (a map that is zero, or cut short by all-zero weights), from_torch
    (trace a torch model into a Network, checked against its autograd; needs torch)
Shift invariance
    shift_invariance (how the output of a random network or a torch module changes when its
    input shifts by 0 ... 2x its total stride: pooled features and the map) -> ShiftInvariance
Plotting
    ``rfanalysis.plotting`` (imported on demand; needs matplotlib)

Padding modes (what a tap outside the input reads; input ``a b c d``, padding 2)::

    zeros      0 0 | a b c d | 0 0     no route
    reflect    c b | a b c d | c b     mirrored, edge not repeated (torch, numpy 'reflect')
    symmetric  b a | a b c d | d c     mirrored, edge repeated (numpy 'symmetric', TF)
    replicate  a a | a b c d | d d     edge pixel (torch 'replicate', numpy 'edge')
    circular   c d | a b c d | a b     wrapped (torch 'circular', numpy 'wrap')

A tap that lands on a pixel is a route, so a reflected tap adds a second route to the pixel it
mirrors. For a single-channel, bias-free linear network with all weights 1, the derivative of
output unit ``u`` with respect to input pixel ``i`` equals the number of routes from ``i`` to
``u``.

>>> import rfanalysis as rfa
>>> rfa.routes("conv2*10", (11,)).astype(int).tolist()
[1, 10, 45, 120, 210, 252, 210, 120, 45, 10, 1]
"""

from __future__ import annotations

import importlib
from typing import Any

from . import theory, zoo
from ._blindspots import BlindSpotReport, SizeSearch, UnevenPadding, blind_spots
from ._compare import Comparison, compare
from ._empirical import (
    InfluenceWarning,
    ShiftInvariance,
    influence,
    shift_invariance,
)
from ._engine import CountOverflowError, coverage, output_shape, routes
from ._geometry import (
    Connections,
    Geometry,
    GeometryRow,
    ReceptiveField,
    connections,
    geometry,
    receptive_field,
)
from ._graph import Concat, Input, Network, Node, Parallel, Residual, Value
from ._importers.errors import ConversionError
from ._importers.fromtorch import from_torch
from ._io import load, save
from ._ops import (
    AdaptivePool,
    Add,
    Attention,
    BlurPool,
    Cat,
    Conv,
    ConvTranspose,
    Dense,
    GlobalPool,
    Interpolate,
    Layer,
    LocallyConnected,
    Mul,
    Pool,
    SpatialNorm,
    Upsample,
)
from ._parse import parse

__version__ = "0.1.0"

__all__ = [
    "AdaptivePool",
    "Add",
    "Attention",
    "BlindSpotReport",
    "BlurPool",
    "Cat",
    "Comparison",
    "Concat",
    "Connections",
    "Conv",
    "ConvTranspose",
    "ConversionError",
    "CountOverflowError",
    "Dense",
    "Geometry",
    "GeometryRow",
    "GlobalPool",
    "InfluenceWarning",
    "Input",
    "Interpolate",
    "Layer",
    "LocallyConnected",
    "Mul",
    "Network",
    "Node",
    "Parallel",
    "Pool",
    "ReceptiveField",
    "Residual",
    "ShiftInvariance",
    "SizeSearch",
    "SpatialNorm",
    "UnevenPadding",
    "Upsample",
    "Value",
    "__version__",
    "blind_spots",
    "compare",
    "connections",
    "coverage",
    "from_torch",
    "geometry",
    "influence",
    "load",
    "output_shape",
    "parse",
    "receptive_field",
    "routes",
    "save",
    "shift_invariance",
    "theory",
    "zoo",
]

_LAZY = ("plotting",)


def __getattr__(name: str) -> Any:
    # submodules that import heavy dependencies load on first use
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'rfanalysis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(_LAZY))
