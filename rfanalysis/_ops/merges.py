"""Merges: n-ary add, multiply and channel concatenation of maps from any depths.

Routes (DESIGN section 9): the routes to a merged unit are the sum of the routes through each
operand (for a product the derivative is a sum of terms, one per factor). Operands may
broadcast: an operand with a single unit on an axis is read by every position on that axis.
Channels are collapsed, so a concatenation adds routes like a sum does.

Geometry: the field of a merged unit is the union of the operands' fields; operands whose
centres or jumps differ are reported as misaligned, with the spread of their centres.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np

from .base import GLOBAL, Field, Layer, OpError, Shape
from .counts import Algebra, Counts


class ShapeMismatch(OpError):
    """Operands whose spatial shapes cannot be merged (the planner names them)."""

    def __init__(self, shapes: tuple[Shape | None, ...], rule: str, hint: str = "") -> None:
        super().__init__(rule + hint)
        self.shapes = shapes
        self.rule = rule
        self.hint = hint


def broadcast_shapes(shapes: tuple[Shape | None, ...], allow: bool) -> Shape | None:
    """The merged shape of ``shapes`` (None if any is unknown); with ``allow``, a size of 1
    broadcasts."""
    if any(s is None for s in shapes):
        return None
    known = [s for s in shapes if s is not None]
    if len({len(s) for s in known}) > 1:
        raise ShapeMismatch(shapes, "have different numbers of axes")
    out = []
    for sizes in zip(*known):
        big = {n for n in sizes if not (allow and n == 1)}
        if len(big) > 1:
            hint = " (a size of 1 on an axis broadcasts)" if allow else ""
            raise ShapeMismatch(shapes, "must have the same spatial shape to be merged", hint)
        out.append(big.pop() if big else 1)
    return tuple(out)


def union_fields(
    fields_in: tuple[tuple[Any, ...], ...], names: tuple[str, ...]
) -> tuple[tuple[Any, ...], str]:
    """Union of the operands' per-axis fields, and a note on misaligned operands."""
    ndim = len(fields_in[0])
    out: list[Any] = []
    notes: list[str] = []
    for a in range(ndim):
        fs = [f[a] for f in fields_in]
        if any(f is GLOBAL for f in fs):
            out.append(GLOBAL)
            continue
        jumps = [f.jump for f in fs]
        jump = max(jumps)
        if len(set(jumps)) > 1:
            notes.append(
                f"axis {a}: branch jumps differ ("
                + ", ".join(f"{n} {_num(j)}" for n, j in zip(names, jumps))
                + ")"
            )
        if any(f.start is None for f in fs):
            out.append(Field(max(f.rf for f in fs), jump, None))
            continue
        lo = min(f.start - (f.rf - 1) / 2 for f in fs)
        hi = max(f.start + (f.rf - 1) / 2 for f in fs)
        out.append(Field(hi - lo + 1, jump, (lo + hi) / 2))
        starts = [f.start for f in fs]
        if len(set(starts)) > 1:
            spread = max(starts) - min(starts)
            notes.append(
                f"axis {a}: branches misaligned, unit 0 centred at "
                + ", ".join(f"{n} {_num(c)}" for n, c in zip(names, starts))
                + (f" (spread {_num(spread)})" if len(fs) > 2 else "")
            )
    note = "; ".join(notes)
    if ndim > 1 and notes and all(n.split(": ", 1)[1] == notes[0].split(": ", 1)[1] for n in notes):
        note = "all axes: " + notes[0].split(": ", 1)[1]
    return tuple(out), note


def _num(x: Fraction) -> Any:
    return int(x) if x.denominator == 1 else x


class Merge(Layer):
    """Shared rules of the n-ary merges."""

    arity = (1, None)
    broadcasts: ClassVar[bool] = True

    def resolve(self, in_shapes: tuple[Shape | None, ...]) -> tuple[Shape | None, None]:
        return broadcast_shapes(in_shapes, self.broadcasts), None

    def routes_back(self, step: Any, g: Counts, alg: Algebra) -> tuple[Counts, ...]:
        return tuple(alg.broadcast_back(g, shape) for shape in step.in_shapes)

    def field(self, step: Any, inputs: tuple[tuple[Any, ...], ...]) -> tuple[tuple[Any, ...], str]:
        # an operand with one unit on an axis where the merged map has several is read by
        # every unit there: each unit's field holds that operand's, however far away, so no
        # (size, jump, start) describes the units along that axis; it is global, as after
        # the global reduction that usually makes such an operand
        out = step.out_shape
        wide = sorted(
            {a for shape in step.in_shapes for a, n in enumerate(shape or ()) if n == 1 < out[a]}
            if out is not None
            else set()
        )
        if not wide:
            return union_fields(inputs, step.input_names)
        fields, note = union_fields(
            tuple(tuple(GLOBAL if a in wide else f for a, f in enumerate(fs)) for fs in inputs),
            step.input_names,
        )
        axes = ", ".join(map(str, wide))
        broadcast = f"ax{'es' if len(wide) > 1 else 'is'} {axes}: an operand of one unit is read "
        return fields, "; ".join(filter(None, [note, broadcast + "by every unit (global)"]))

    def on_axis(self, axis: int) -> Layer:
        return self

    @staticmethod
    def _np_reduce_to(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Adjoint of numpy broadcasting ``shape`` (channels and spatial axes) to ``g``."""
        for axis, n in enumerate(shape):
            if n == 1 and g.shape[axis] != 1:
                g = g.sum(axis=axis, keepdims=True)
        return g


@dataclass(frozen=True, repr=False)
class Add(Merge):
    """Sum of maps of one shape (a residual add with any number of operands).

    >>> Add()
    Add()
    """

    op_name = "add"
    channel_rule = "unify"
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False, default=None)

    def np_forward(self, node: Any, xs: list[np.ndarray], w: Any) -> tuple[np.ndarray, Any]:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out, [x.shape for x in xs]

    def np_backward(self, node: Any, gy: np.ndarray, saved: Any, w: Any) -> tuple:
        return tuple(self._np_reduce_to(gy, shape) for shape in saved)

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


@dataclass(frozen=True, repr=False)
class Mul(Merge):
    """Product of maps (a gate: squeeze-and-excitation, attention gates, GLU).

    Routes to a product are the routes through every factor (the derivative of a product is
    a sum of terms, one per factor).

    >>> Mul()
    Mul()
    """

    op_name = "mul"
    channel_rule = "gate"
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False, default=None)

    def np_forward(self, node: Any, xs: list[np.ndarray], w: Any) -> tuple[np.ndarray, Any]:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out, xs

    def np_backward(self, node: Any, gy: np.ndarray, saved: Any, w: Any) -> tuple:
        grads = []
        for i, x in enumerate(saved):
            g = gy
            for j, other in enumerate(saved):
                if j != i:
                    g = g * other
            grads.append(self._np_reduce_to(g, x.shape))
        return tuple(grads)

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


@dataclass(frozen=True, repr=False)
class Cat(Merge):
    """Channel concatenation of maps of one spatial shape (DenseNet blocks, Inception).

    >>> Cat()
    Cat()
    """

    op_name = "cat"
    channel_rule = "sum"
    broadcasts = False
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False, default=None)

    def np_forward(self, node: Any, xs: list[np.ndarray], w: Any) -> tuple[np.ndarray, Any]:
        return np.concatenate(xs, axis=1), [x.shape[1] for x in xs]

    def np_backward(self, node: Any, gy: np.ndarray, saved: Any, w: Any) -> tuple:
        return tuple(np.split(gy, np.cumsum(saved)[:-1], axis=1))

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        return torch.cat(xs, dim=1)
