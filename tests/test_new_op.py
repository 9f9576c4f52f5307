"""Adding an operation kind is one class: a toy operation defined here, in one place, is
picked up by routes, coverage, geometry, both influence backends and spec files with no
other edit (the op table is the only place to edit).

The toy is a circular shift (``torch.roll`` by ``shift`` along every spatial axis): output
unit ``o`` is input unit ``(o - shift) mod n``. Its edges for the brute-force enumerator and
its torch oracle are written separately below, from that definition.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

import rfanalysis as rfa
from rfanalysis._ops.base import GLOBAL, REGISTRY, Field

from .oracles import brute_coverage, brute_routes, torch_grad


def _define_roll():
    """The toy operation: every rule on its class (see rfanalysis/_ops/base.py)."""

    @dataclasses.dataclass(frozen=True, repr=False)
    class Roll(rfa.Layer):
        """Circular shift by ``shift`` units along every spatial axis (``torch.roll``)."""

        op_name = "roll"
        needs_space = True

        shift: int = 1
        name: str | None = dataclasses.field(default=None, kw_only=True)
        ndim: int | None = dataclasses.field(init=False, repr=False, default=None)

        def spec(self):
            return f"roll{self.shift}"

        def _repr_args(self):
            return [str(self.shift)]

        def resolve(self, in_shapes):  # shape rule: the shape is kept
            (shape,) = in_shapes
            return shape, None

        def routes_back(self, step, g, alg):  # input unit i feeds output unit i + shift
            g = alg.materialise(g)
            return (np.roll(g, -self.shift, axis=tuple(range(g.ndim))),)

        def field(self, step, inputs):  # geometry: unit o has unit o - shift's field
            return tuple(
                GLOBAL
                if f is GLOBAL
                else Field(f.rf, f.jump, None if f.start is None else f.start - self.shift * f.jump)
                for f in inputs[0]
            ), "wraps around"

        def on_axis(self, axis):
            return self

        def np_forward(self, node, xs, w):
            (x,) = xs
            return np.roll(x, self.shift, axis=tuple(range(2, x.ndim))), None

        def np_backward(self, node, gy, saved, w):
            return (np.roll(gy, -self.shift, axis=tuple(range(2, gy.ndim))),)

        def torch_forward(self, node, torch, xs, w):
            (x,) = xs
            dims = tuple(range(2, x.ndim))
            return torch.roll(x, (self.shift,) * len(dims), dims)

    return Roll


@pytest.fixture(scope="module")
def roll():
    cls = _define_roll()
    assert REGISTRY["roll"] is cls
    yield cls
    del REGISTRY["roll"]  # other tests list the registered kinds


# --------------------------------------------------------------------------- oracles
def roll_edges(layer, shape):
    """Brute-force edges of a roll, from its definition: out unit o reads (o - shift) mod n."""
    edges = [
        (o, tuple((oa - layer.shift) % n for oa, n in zip(o, shape)))
        for o in itertools.product(*map(range, shape))
    ]
    return shape, edges


def torch_roll(layer, x):
    """The same, in torch, by index selection (not ``torch.roll``)."""
    import torch

    for axis in range(2, x.ndim):
        n = x.shape[axis]
        x = x.index_select(axis, torch.tensor([(o - layer.shift) % n for o in range(n)]))
    return x


def _graph(roll):
    """conv3p1 -> roll2; then a reflect conv and a stride-2 conv + upsampling of the rolled
    map, a residual add with the input and a concat."""
    x = rfa.Input()
    r = roll(2)(rfa.Conv(3, padding=1)(x))
    b = rfa.Conv(3, padding=1, padding_mode="reflect")(r)
    d = rfa.Upsample(2)(rfa.Conv(2, 2)(r))
    return rfa.Network(rfa.Cat()(rfa.Add()(b, x), d))


SHAPES = [(8,), (6, 8)]


# --------------------------------------------------------------------------- tests
def test_roll_alone_by_hand(roll):
    # out unit 0 of roll2 on 5 pixels is pixel 3; out unit (0, 0) of roll1 on 3x4 is (2, 3)
    assert rfa.routes(roll(2), (5,), (0,)).tolist() == [0, 0, 0, 1, 0]
    expected = np.zeros((3, 4))
    expected[2, 3] = 1
    np.testing.assert_array_equal(rfa.routes(roll(1), (3, 4), (0, 0)), expected)
    assert rfa.coverage([rfa.Conv(2), roll(1)], (4,)).tolist() == [1, 2, 2, 1]


@pytest.mark.parametrize("shape", SHAPES)
def test_routes_and_coverage_match_brute_force(roll, shape):
    net = _graph(roll)
    extra = {roll: roll_edges}
    for unit in itertools.product(*(range(0, m, 3) for m in shape)):
        assert (
            rfa.routes(net, shape, unit, exact=True).tolist()
            == brute_routes(net, shape, unit, extra).tolist()
        )
    expected = brute_coverage(net, shape, extra)
    assert rfa.coverage(net, shape, exact=True).tolist() == expected.tolist()
    logs = rfa.coverage(net, shape, log=True)
    np.testing.assert_allclose(logs, np.log10(expected.astype(float)), rtol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("shape", SHAPES)
def test_routes_and_both_influence_backends_match_torch(roll, shape):
    net = _graph(roll)
    extra = {roll: torch_roll}
    unit = tuple(m - 1 for m in shape)  # a corner: the roll wraps the field around
    routes = rfa.routes(net, shape, unit)
    np.testing.assert_array_equal(routes, torch_grad(net, shape, unit, extra))
    np.testing.assert_array_equal(rfa.coverage(net, shape), torch_grad(net, shape, None, extra))
    # a linear network with ones weights: the influence map is the route map
    for backend in ("numpy", "torch"):
        np.testing.assert_array_equal(
            rfa.influence(net, shape, unit, weights="ones", backend=backend), routes
        )


def test_geometry_uses_the_ops_rule(roll):
    g = rfa.geometry(_graph(roll), (8,))
    (row,) = [r for r in g.rows if r.kind == "roll"]
    # after conv3p1 (rf 3, start 0) the roll moves the centre of unit 0 back by 2 units
    assert (row.layer, row.rf_size, row.jump, row.start, row.note) == (
        "roll2",
        (3,),
        (1,),
        (-2,),
        "wraps around",
    )
    # the reflect conv: rf 5, start -2; the residual input: rf 1, start 0 (union [-4, 0]);
    # conv2s2 + up2: rf 4, start -2; the concat's union: rf 5 centred on -2
    rf = g.receptive_field
    assert (rf.size, rf.stride, rf.start) == ((5,), (1,), (-2,))


def test_spec_files_write_and_read_it(roll, tmp_path):
    net = _graph(roll)
    for suffix in (".json", ".toml"):
        path = tmp_path / f"g{suffix}"
        rfa.save(net, path)
        assert '"roll"' in path.read_text()
        assert rfa.load(path) == net
