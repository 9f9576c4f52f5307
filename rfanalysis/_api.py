"""The public functions that take a model: each resolves it through the model sources
(:mod:`rfanalysis._sources`), so that every one of them accepts the same things (a network,
spec text or file, a zoo name, a torch module, an ONNX model or file, a model reference) and
the engine, geometry and analyses below receive networks only (DESIGN §7, §10)."""

from __future__ import annotations

from . import _blindspots, _empirical, _engine, _geometry, _io
from ._sources import takes_models

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
