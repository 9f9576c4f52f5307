"""A planned network given real channels, weights and inputs (shared by both backends).

:func:`build` gives every step of a :class:`~rfanalysis._plan.Plan` concrete channel counts,
weight shapes and a ReLU flag (:class:`Op`); :func:`draw` draws the inputs and weights of
every trial. The numpy and torch backends execute the same plan on the same arrays, each
operation through its own backend rules, so that they can be compared value for value.

Channels (:func:`rfanalysis._plan.infer_channels`)
    The input has ``in_channels`` channels. A weighted layer (Conv, LocallyConnected,
    ConvTranspose) outputs its own ``out_channels`` when the layer sets it, else
    ``channels``; an add or a product makes its operands agree, so the last weighted layer
    of a residual body whose shortcut is the identity outputs the block's input channels.
    Pools and upsampling keep channels; a concat outputs the sum of its operands' channels; a
    dense layer outputs one channel of ``out_features`` units (its input is flattened in
    ``(C, *spatial)`` order, as ``torch.flatten`` does).
Activation
    With ``activation="relu"``, a ReLU follows every weighted layer (Conv,
    LocallyConnected, ConvTranspose, Dense) except the output node: the output is a linear
    read-out, as in Luo et al. (2016).
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

from .._plan import Plan, Step, infer_channels

WEIGHT_NAMES = ("ones", "normal", "uniform")


@dataclass(frozen=True, eq=False)
class Op:
    """A planned step with concrete channels, weight shape and ReLU flag."""

    step: Step
    cins: tuple[int, ...]  # channels of each input
    cout: int
    relu: bool
    shape: tuple[int, ...] | None  # per-trial weight shape; None for layers without weights
    fan_in: int

    @property
    def layer(self) -> Any:
        return self.step.layer

    @property
    def cin(self) -> int:
        return self.cins[0]

    @property
    def groups(self) -> int:
        layer = self.step.layer
        return int(getattr(layer, "groups", 1)) if layer.weighted else 1

    @property
    def in_shape(self) -> tuple[int, ...]:
        assert self.step.in_shape is not None
        return self.step.in_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        assert self.step.out_shape is not None
        return self.step.out_shape


@dataclass(frozen=True, eq=False)
class Model:
    plan: Plan
    ops: tuple[Op, ...]  # one per step after the input, in data-flow order
    in_channels: int

    def weighted(self) -> list[Op]:
        return [op for op in self.ops if op.shape is not None]


# --------------------------------------------------------------------------- building
def build(plan: Plan, channels: int, in_channels: int | None, relu: bool) -> Model:
    """Give every step of ``plan`` concrete channels, weight shapes and ReLU flags (see the
    module docstring); the output step's read-out stays linear."""
    counts = infer_channels(plan.network.nodes, in_channels, channels)
    last = plan.steps[-1].index
    ops = []
    for step in plan.ops:
        layer = step.layer
        cins = tuple(counts[j] for j in step.inputs)
        cout = counts[step.index]
        assert cout is not None and all(c is not None for c in cins)
        op = Op(step, cins, cout, relu and layer.weighted and step.index != last, None, 0)  # type: ignore[arg-type]
        groups = op.groups
        if layer.weighted and (op.cin % groups or cout % groups):
            raise ValueError(
                f"{step.where}: groups={groups} needs input and output channels divisible by "
                f"{groups}; got {op.cin} in and {cout} out (choose `channels=` / "
                "`in_channels=` accordingly)"
            )
        found = layer.weight_shape(op)
        if found is not None:
            op = replace(op, shape=found[0], fan_in=found[1])
        ops.append(op)
    assert counts[0] is not None
    return Model(plan, tuple(ops), counts[0])


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


def check_seed(seed: Any) -> None:
    """Raise for a seed :func:`generators` cannot take (the message names ``rng``)."""
    if isinstance(seed, bool) or not isinstance(
        seed, (int, np.integer, np.random.Generator, np.random.SeedSequence)
    ):
        raise TypeError(
            f"`rng` must be an int seed, a numpy Generator or a SeedSequence, got {seed!r}"
        )
    if isinstance(seed, (int, np.integer)) and seed < 0:
        raise ValueError(f"`rng` seed must be >= 0, got {seed}")


def trial_weights(params: dict[int, Any], convert: Any) -> Any:
    """``(start, stop) -> weights`` of trials ``start`` to ``stop - 1``: a weight drawn once
    for every trial (leading axis 1) is converted once and shared, the others are sliced,
    then converted (``convert``: to a dtype, or to a tensor)."""
    shared = {k: convert(w) for k, w in params.items() if w.shape[0] == 1}

    def of(start: int, stop: int) -> dict[int, Any]:
        return {k: shared[k] if k in shared else convert(w[start:stop]) for k, w in params.items()}

    return of


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
    for op in model.weighted():
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
    ops = model.weighted()
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
