"""The public functions that take a model: each resolves it through the model sources
(:mod:`rfanalysis._sources`), so that every one of them accepts the same things (a network,
spec text or file, a zoo name, a torch module, an ONNX model or file, a model reference) and
the engine, geometry and analyses below receive networks only (DESIGN §7, §10)."""

from __future__ import annotations

import functools
from typing import Any

from . import _blindspots, _empirical, _engine, _geometry, _io, _tiled, _tiling
from ._graph import is_torch_module
from ._sources import _model_of, network, takes_models

routes = takes_models(_engine.routes)
coverage = takes_models(_engine.coverage)
output_shape = takes_models(_engine.output_shape)
geometry = takes_models(_geometry.geometry)
receptive_field = takes_models(_geometry.receptive_field)
connections = takes_models(_geometry.connections)
blind_spots = takes_models(_blindspots.blind_spots)
save = takes_models(_io.save)
# these run a torch module itself (its own weights) where they are given one
influence = takes_models(_empirical.influence, modules=True)
shift_invariance = takes_models(_empirical.shift_invariance, modules=True)


@functools.wraps(_tiling.tiling)
def tiling(
    net: Any, tile: Any, *, input_shape: Any = None, context: str | None = None
) -> _tiling.Tiling:
    model = _model_of(net, "net")
    if input_shape is None and is_torch_module(model):
        input_shape = tile  # a torch module is traced at the size of its windows
    return _tiling.tiling(
        network(model, input_shape), tile, input_shape=input_shape, context=context
    )


@functools.wraps(_tiled.tiled)
def tiled(model: Any, x: Any, tile: Any, **kwargs: Any) -> Any:
    found = model if isinstance(model, _tiled.RandomNetwork) else _model_of(model, "model")
    if not (is_torch_module(found) or isinstance(found, _tiled.RandomNetwork)):
        found = network(found)
    return _tiled.tiled(found, x, tile, **kwargs)
