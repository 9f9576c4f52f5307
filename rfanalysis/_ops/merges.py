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
    """The merged shape of ``shapes`` (None if any is unknown); with ``allow``, numpy's rule:
    axes aligned from the right, a missing leading axis or a size of 1 broadcasts."""
    if any(s is None for s in shapes):
        return None
    known = [s for s in shapes if s is not None]
    ndim = max(len(s) for s in known)
    if len({len(s) for s in known}) > 1:
        if not allow:
            raise ShapeMismatch(shapes, "have different numbers of axes")
        known = [(1,) * (ndim - len(s)) + tuple(s) for s in known]
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
        if not all(isinstance(f, Field) for f in fs):  # irregular: after a traced layout
            out.append(next(f for f in fs if not isinstance(f, Field)))
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

    def reach(self, step: Any, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        out = np.zeros(step.out_shape, dtype=bool)
        for r in inputs:
            out |= r  # numpy broadcasting: a size-1 axis is read by every position
        return out

    def field(self, step: Any, inputs: tuple[tuple[Any, ...], ...]) -> tuple[tuple[Any, ...], str]:
        # an operand with one unit on an axis where the merged map has several is read by
        # every unit there: each unit's field holds that operand's, however far away, so no
        # (size, jump, start) describes the units along that axis; it is global, as after
        # the global reduction that usually makes such an operand
        out = step.out_shape
        wide: list[int] = []
        if out is not None and len(out) == len(inputs[0]):  # map axes are the input's axes
            padded = [(1,) * (len(out) - len(s)) + tuple(s) for s in step.in_shapes if s]
            wide = sorted({a for s in padded for a, n in enumerate(s) if n == 1 < out[a]})
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
    def _aligned(xs: list[Any]) -> list[Any]:
        """Operands ``(B, C, *spatial)`` with missing leading spatial axes inserted (size 1),
        so that array broadcasting aligns spatial axes from the right as the routes do."""
        nd = max(x.ndim for x in xs)
        return [x.reshape(x.shape[:2] + (1,) * (nd - x.ndim) + x.shape[2:]) for x in xs]

    @staticmethod
    def _np_reduce_to(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Adjoint of broadcasting an array of ``shape`` (batch, channels, spatial) to ``g``."""
        lead = g.ndim - len(shape)
        if lead:
            g = g.sum(axis=tuple(range(2, 2 + lead)))
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
        aligned = self._aligned(xs)
        out = aligned[0]
        for x in aligned[1:]:
            out = out + x
        return out, [x.shape for x in xs]

    def np_backward(self, node: Any, gy: np.ndarray, saved: Any, w: Any) -> tuple:
        return tuple(self._np_reduce_to(gy, shape) for shape in saved)

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        aligned = self._aligned(xs)
        out = aligned[0]
        for x in aligned[1:]:
            out = out + x
        return out


@dataclass(frozen=True, repr=False)
class Mul(Merge):
    """Product of maps (a gate: squeeze-and-excitation, attention gates, GLU).

    Routes to a product are the routes through every factor (the derivative of a product is
    a sum of terms, one per factor). In context ``"local"`` the gates only modulate: their
    routes are dropped while another factor carries the map. ``gates`` names the gate
    operands by position; by default they are the operands that broadcast (a
    squeeze-and-excitation scale of one unit per channel) beside one that does not.

    >>> Mul()
    Mul()
    >>> Mul(gates=(1,))
    Mul(gates=(1,))
    """

    op_name = "mul"
    channel_rule = "gate"
    modulates = True
    gates: tuple[int, ...] | None = field(default=None, kw_only=True)
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if self.gates is not None:
            object.__setattr__(self, "gates", tuple(int(g) for g in self.gates))
            if any(g < 0 for g in self.gates):
                raise ValueError(f"Mul `gates` must be operand positions, got {self.gates!r}")

    def _repr_args(self) -> list[str]:
        return [] if self.gates is None else [f"gates={self.gates!r}"]

    def resolve(self, in_shapes: tuple[Shape | None, ...]) -> tuple[Shape | None, None]:
        bad = [g for g in self.gates or () if g >= len(in_shapes)]
        if bad:
            raise OpError(f"`gates` {bad} name operands it does not have ({len(in_shapes)})")
        return super().resolve(in_shapes)

    def gate_inputs(self, step: Any) -> set[int]:
        """Positions of the operands that only modulate (none if none carries the map)."""
        n = len(step.inputs)
        if self.gates is not None:
            gates = set(self.gates)
        else:
            full = step.out_shape
            gates = {
                i
                for i, s in enumerate(step.in_shapes)
                if s is not None and full is not None and (1,) * (len(full) - len(s)) + s != full
            }
        return gates if len(gates) < n else set()

    def local_routes_back(self, step: Any, g: Counts, alg: Algebra) -> tuple[Counts | None, ...]:
        gates = self.gate_inputs(step)
        return tuple(
            None if i in gates else alg.broadcast_back(g, shape)
            for i, shape in enumerate(step.in_shapes)
        )

    def local_reach(self, step: Any, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        gates = self.gate_inputs(step)
        return Merge.reach(self, step, tuple(r for i, r in enumerate(inputs) if i not in gates))

    def local_field(
        self, step: Any, inputs: tuple[tuple[Any, ...], ...]
    ) -> tuple[tuple[Any, ...], str] | None:
        gates = self.gate_inputs(step)
        if not gates and self.gates is None and step.out_shape is None:
            # sizes unknown: a factor that sees the whole input gates one that does not
            whole = {i for i, f in enumerate(inputs) if all(a is GLOBAL for a in f)}
            gates = whole if len(whole) < len(inputs) else set()
        keep = [i for i in range(len(inputs)) if i not in gates]
        return union_fields(
            tuple(inputs[i] for i in keep), tuple(step.input_names[i] for i in keep)
        )

    def np_forward(self, node: Any, xs: list[np.ndarray], w: Any) -> tuple[np.ndarray, Any]:
        aligned = self._aligned(xs)
        out = aligned[0]
        for x in aligned[1:]:
            out = out * x
        return out, (aligned, [x.shape for x in xs])

    def np_backward(self, node: Any, gy: np.ndarray, saved: Any, w: Any) -> tuple:
        aligned, shapes = saved
        grads = []
        for i, shape in enumerate(shapes):
            g = gy
            for j, other in enumerate(aligned):
                if j != i:
                    g = g * other
            grads.append(self._np_reduce_to(g, shape))
        return tuple(grads)

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        aligned = self._aligned(xs)
        out = aligned[0]
        for x in aligned[1:]:
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
