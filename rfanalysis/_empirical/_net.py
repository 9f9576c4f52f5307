"""A planned network given real channels, weights and inputs (shared by both backends).

:func:`build` turns a :class:`~rfanalysis._plan.Plan` into a tree of :class:`Op` and
:class:`Merge` nodes with concrete channel counts, weight shapes and ReLU flags;
:func:`draw` draws the inputs and weights of every trial. The numpy and torch backends
execute the same tree on the same arrays, so that they can be compared value for value.

Channels
    The input has ``in_channels`` channels. A weighted layer (Conv, LocallyConnected,
    ConvTranspose) outputs its own ``out_channels`` when the layer sets it, else
    ``channels``; the last weighted layer of a residual body whose shortcut is the identity
    outputs the block's input channels instead, so that the add is defined. Pools and
    upsampling keep channels; a concat outputs the sum of its branches' channels; a dense
    layer outputs one channel of ``out_features`` units (its input is flattened in
    ``(C, *spatial)`` order, as ``torch.flatten`` does).
Activation
    With ``activation="relu"``, a ReLU follows every weighted layer (Conv,
    LocallyConnected, ConvTranspose, Dense), inside blocks too, except the network's last
    layer: the output is a linear read-out, as in Luo et al. (2016).
Weights (one set per trial, no biases)
    Shapes follow torch: Conv ``(C_out, C_in / groups, *k)``, ConvTranspose
    ``(C_in, C_out / groups, *k)``, LocallyConnected ``(*out_shape, C_out, C_in, *k)``,
    Dense ``(out_features, in_features)``. ``"normal"`` draws N(0, 2 / fan_in) and
    ``"uniform"`` U(-sqrt(6 / fan_in), sqrt(6 / fan_in)) (He et al. 2015), with ``fan_in``
    the number of weights feeding one output unit at stride 1: ``C_in / groups * prod(k)``
    (LocallyConnected ``C_in * prod(k)``, Dense ``in_features``).
Randomness
    Trial ``t`` draws from its own stream (``SeedSequence(seed).spawn(trials)[t]``): first
    its input, standard normal of shape ``(C_in, *input_shape)``, then its weights layer by
    layer in data-flow order. Results therefore do not depend on how trials are batched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .._layers import (
    Concat,
    Conv,
    ConvTranspose,
    Dense,
    LocallyConnected,
    Pool,
    Residual,
    Upsample,
)
from .._plan import Block, Plan, Step, leaves

WEIGHTED = (Conv, LocallyConnected, ConvTranspose, Dense)
WEIGHT_NAMES = ("ones", "normal", "uniform")


@dataclass(frozen=True, eq=False)
class Op:
    """A primitive layer with concrete channels."""

    step: Step
    kind: str  # conv | lc | tconv | pool | up | dense
    cin: int
    cout: int
    groups: int
    relu: bool
    shape: tuple[int, ...] | None  # per-trial weight shape; None for layers without weights
    fan_in: int

    @property
    def layer(self) -> Any:
        return self.step.layer

    @property
    def in_shape(self) -> tuple[int, ...]:
        assert self.step.in_shape is not None
        return self.step.in_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        assert self.step.out_shape is not None
        return self.step.out_shape

    @property
    def pads(self) -> tuple[tuple[int, int], ...]:
        """Resolved ``(before, after)`` padding per axis (Pool, Conv, LC, ConvTranspose)."""
        return tuple((int(p[0]), int(p[1])) for p in self.step.pads if p is not None)


@dataclass(frozen=True, eq=False)
class Merge:
    """A residual add (``add=True``) or a channel concat of branches on the same input."""

    add: bool
    branches: tuple[tuple[Op | Merge, ...], ...]
    cout: int


@dataclass(frozen=True, eq=False)
class Model:
    plan: Plan
    nodes: tuple[Op | Merge, ...]
    in_channels: int

    def ops(self) -> list[Op]:
        """Every primitive op, depth first, in data-flow order."""
        return leaves(self.nodes, Op)


# --------------------------------------------------------------------------- building
def _kind(layer: Any) -> str:
    return {
        Conv: "conv",
        LocallyConnected: "lc",
        ConvTranspose: "tconv",
        Pool: "pool",
        Upsample: "up",
        Dense: "dense",
    }[type(layer)]


def _op(step: Step, cin: int, channels: int, default_out: int | None, relu: bool) -> Op:
    layer: Any = step.layer
    kind = _kind(layer)
    declared_in = getattr(layer, "in_channels", None)
    if declared_in is not None and declared_in != cin:
        raise ValueError(
            f"{step.where}: in_channels is {declared_in} but its input has {cin} channels "
            "(set `in_channels=` / `channels=` to match the network)"
        )
    if kind in ("pool", "up"):
        return Op(step, kind, cin, cin, 1, False, None, 0)
    assert step.in_shape is not None and step.out_shape is not None
    if kind == "dense":
        features = cin * math.prod(step.in_shape)
        return Op(step, kind, cin, 1, 1, relu, (layer.out_features, features), features)
    cout = layer.out_channels
    if cout is None:
        cout = default_out if default_out is not None else channels
    groups = getattr(layer, "groups", 1)
    if cin % groups or cout % groups:
        raise ValueError(
            f"{step.where}: groups={groups} needs input and output channels divisible by "
            f"{groups}; got {cin} in and {cout} out (choose `channels=` / `in_channels=` "
            "accordingly)"
        )
    taps = math.prod(layer.kernel_size)
    if kind == "conv":
        shape: tuple[int, ...] = (cout, cin // groups, *layer.kernel_size)
        fan_in = cin // groups * taps
    elif kind == "tconv":
        shape = (cin, cout // groups, *layer.kernel_size)
        fan_in = cin // groups * taps
    else:  # locally connected: one kernel per output position
        shape = (*step.out_shape, cout, cin, *layer.kernel_size)
        fan_in = cin * taps
    return Op(step, kind, cin, cout, groups, relu, shape, fan_in)


def _sequence(nodes, cin: int, channels: int, relu: bool, want_out: int | None):
    """Build a sequence; ``want_out`` sets the default output channels of the sequence's
    last weighted layer (residual bodies beside an identity shortcut)."""
    last_weighted = None
    if want_out is not None:
        for index, node in enumerate(nodes):
            if isinstance(node, Step) and isinstance(node.layer, WEIGHTED):
                last_weighted = index
    built: list[Op | Merge] = []
    for index, node in enumerate(nodes):
        if isinstance(node, Step):
            default = want_out if index == last_weighted else None
            op = _op(node, cin, channels, default, relu)
            built.append(op)
            cin = op.cout
        else:
            merge = _merge(node, cin, channels, relu)
            built.append(merge)
            cin = merge.cout
    return tuple(built), cin


def _merge(block: Block, cin: int, channels: int, relu: bool) -> Merge:
    layer = block.layer
    if isinstance(layer, Residual):
        identity = layer.shortcut is None
        body, body_out = _sequence(
            block.branches[0], cin, channels, relu, cin if identity else None
        )
        shortcut, short_out = _sequence(block.branches[1], cin, channels, relu, None)
        if body_out != short_out:
            raise ValueError(
                f"{block.where}: the body gives {body_out} channels but the shortcut gives "
                f"{short_out}; a residual add needs equal channel counts"
            )
        return Merge(True, (body, shortcut), body_out)
    assert isinstance(layer, Concat)
    branches, outs = [], []
    for branch in block.branches:
        nodes, out = _sequence(branch, cin, channels, relu, None)
        branches.append(nodes)
        outs.append(out)
    return Merge(False, tuple(branches), sum(outs))


def build(plan: Plan, channels: int, in_channels: int, relu: bool) -> Model:
    """Give every layer of ``plan`` concrete channels, weight shapes and ReLU flags."""
    nodes, _ = _sequence(plan.nodes, in_channels, channels, relu, None)
    last = nodes[-1]
    if isinstance(last, Op) and last.relu:  # the read-out stays linear
        nodes = (*nodes[:-1], replace(last, relu=False))
    return Model(plan, nodes, in_channels)


# --------------------------------------------------------------------------- drawing
WeightsArg = str | Callable[[tuple[int, ...], np.random.Generator], Any]


def _draw_one(op: Op, weights: WeightsArg, gen: np.random.Generator) -> np.ndarray:
    assert op.shape is not None
    if weights == "normal":
        return gen.standard_normal(op.shape) * math.sqrt(2.0 / op.fan_in)
    if weights == "uniform":
        bound = math.sqrt(6.0 / op.fan_in)
        return gen.uniform(-bound, bound, op.shape)
    assert callable(weights)
    value = np.asarray(weights(op.shape, gen), dtype=np.float64)
    if value.shape != op.shape:
        raise ValueError(
            f"`weights` callable returned shape {value.shape} for {op.step.where}; "
            f"expected {op.shape}"
        )
    if not np.isfinite(value).all():
        raise ValueError(f"`weights` callable returned non-finite values for {op.step.where}")
    return value


def generators(seed: Any, trials: int) -> list[np.random.Generator]:
    """One independent generator per trial (``seed``: int, SeedSequence or Generator)."""
    if isinstance(seed, np.random.Generator):
        # advance the caller's generator once, so that consecutive calls differ
        seed = int(seed.integers(2**63))
    if isinstance(seed, np.random.SeedSequence):  # spawn from a copy: leave the caller's as is
        seq = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key)
    else:
        seq = np.random.SeedSequence(seed)
    return [np.random.default_rng(s) for s in seq.spawn(trials)]


def draw_bytes(model: Model, trials: int, weights: WeightsArg, inputs: bool) -> int:
    """Memory of what :func:`draw` returns (float64)."""
    assert model.plan.input_shape is not None
    per_trial = 0 if inputs else model.in_channels * math.prod(model.plan.input_shape)
    shared = 0
    for op in model.ops():
        if op.shape is not None:
            if weights == "ones":
                shared += math.prod(op.shape)
            else:
                per_trial += math.prod(op.shape)
    return 8 * (trials * per_trial + shared)


def draw(
    model: Model,
    trials: int,
    weights: WeightsArg,
    seed: Any,
    inputs: np.ndarray | None,
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Inputs ``(trials, C_in, *input_shape)`` and weights ``{id(op): (T or 1, *shape)}``.

    ``"ones"`` weights are shared by all trials (a leading axis of length 1).
    """
    ops = [op for op in model.ops() if op.shape is not None]
    gens = generators(seed, trials)
    assert model.plan.input_shape is not None
    shape = (model.in_channels, *model.plan.input_shape)
    xs: list[np.ndarray] | None = [] if inputs is None else None
    per_trial: dict[int, list[np.ndarray]] = {id(op): [] for op in ops}
    for gen in gens:
        if xs is not None:
            xs.append(gen.standard_normal(shape))
        if weights != "ones":
            for op in ops:
                per_trial[id(op)].append(_draw_one(op, weights, gen))
    x = np.stack(xs) if xs is not None else inputs
    assert x is not None
    params: dict[int, np.ndarray] = {}
    for op in ops:
        assert op.shape is not None
        if weights == "ones":
            params[id(op)] = np.ones((1, *op.shape))
        else:
            params[id(op)] = np.stack(per_trial[id(op)])
    return x, params


# --------------------------------------------------------------------------- pools
def avg_divisor(step: Step) -> np.ndarray:
    """Divisor of every avg-pool window, shape ``out_shape``: the number of taps inside
    the padded input (padding counts, the overhang of a ``ceil_mode`` window does not).

    This is torch's ``count_include_pad=True`` rule: a window starting at ``o*s - p_before``
    ends at ``min(start + k_eff, n + p_after)``; with dilation the taps before that end count.
    """
    layer: Any = step.layer
    assert step.in_shape is not None and step.out_shape is not None
    counts = []
    for n, m, k, s, d, (pb, pa) in zip(
        step.in_shape, step.out_shape, layer.kernel_size, layer.stride, layer.dilation, step.pads
    ):
        start = np.arange(m) * s - pb
        taps = start[:, None] + d * np.arange(k)[None, :]
        counts.append((taps < n + pa).sum(axis=1))
    out = counts[0].astype(np.float64)
    for c in counts[1:]:
        out = np.multiply.outer(out, c)
    return out
