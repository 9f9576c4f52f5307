"""Explicit relations: which units of each input every output unit reads.

``from_torch`` writes every operation that no structured layer expresses as one of these:
layout operations that move units (a token sequence, a window partition, a pixel shuffle, a
roll, a crop), reductions and normalisations along some axes, products of maps (attention
scores), softmax, attention of every form. A relation is fixed to the shapes it was traced
at.

A relation from an input of ``n`` units to an output of ``m`` units is stored as sets: every
output unit names one set (``set_of[v]``, -1 for none) and every set lists its input units
(CSR: ``members[ptr[k]:ptr[k + 1]]``). Identical sets are stored once, so attention over
``N`` tokens costs ``N`` members, not ``N**2`` pairs. Every pair is one route (DESIGN
section 9: "reads" = one route per pair); routes through several inputs add.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .base import GLOBAL, Layer, OpError, Shape, fmt_shape
from .counts import Algebra, Counts

#: a field whose units are not on a regular grid (after a traced layout operation)
IRREGULAR = "irregular"


@dataclass(frozen=True, eq=False)
class Relation:
    """Sets of input units read by the output units (see the module docstring)."""

    n_in: int
    set_of: np.ndarray  # (m,) int: the set each output unit reads, -1 none
    ptr: np.ndarray  # (sets + 1,) int
    members: np.ndarray  # input units

    @classmethod
    def from_sets(cls, n_in: int, set_of: np.ndarray, sets: list[np.ndarray]) -> Relation:
        ptr = np.zeros(len(sets) + 1, dtype=np.intp)
        ptr[1:] = np.cumsum([len(s) for s in sets])
        members = np.concatenate(sets).astype(np.intp) if sets else np.zeros(0, np.intp)
        return cls(n_in, np.asarray(set_of, dtype=np.intp), ptr, members)

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.ptr)

    def is_identity(self) -> bool:
        """Whether every output unit reads exactly the input unit of its own index."""
        m = self.set_of.size
        if m != self.n_in or self.members.size != m or len(self.ptr) != m + 1:
            return False
        return bool(
            (self.sizes == 1).all() and np.array_equal(self.members[self.set_of], np.arange(m))
        )

    def covers_input(self) -> bool:
        """Whether some output unit reads every input unit."""
        return bool(self.n_in) and int(self.sizes.max(initial=0)) == self.n_in

    def back(self, g: np.ndarray, alg: Algebra) -> np.ndarray:
        """Counts per input unit from counts ``g`` (flat) per output unit."""
        totals = alg.group_sums(g, self.set_of, len(self.ptr) - 1)
        values = np.repeat(totals, self.sizes)
        return alg.scatter(self.n_in, self.members, values)

    def forward(self, r: np.ndarray) -> np.ndarray:
        """Output units that read a True input unit (``r`` flat boolean)."""
        hit = np.zeros(len(self.ptr) - 1, dtype=bool)
        if self.members.size:
            owner = np.repeat(np.arange(len(self.ptr) - 1), self.sizes)
            np.logical_or.at(hit, owner, r[self.members])
        out = np.zeros(self.set_of.size, dtype=bool)
        ok = self.set_of >= 0
        out[ok] = hit[self.set_of[ok]]
        return out

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``y[..., v] = sum of x[..., u] over the units u that v reads`` (last axis flat)."""
        sums = np.zeros((*x.shape[:-1], len(self.ptr) - 1), dtype=x.dtype)
        owner = np.repeat(np.arange(len(self.ptr) - 1), self.sizes)
        np.add.at(sums, (..., owner), x[..., self.members])  # type: ignore[arg-type]
        out = np.zeros((*x.shape[:-1], self.set_of.size), dtype=x.dtype)
        ok = self.set_of >= 0
        out[..., ok] = sums[..., self.set_of[ok]]
        return out

    def apply_t(self, g: np.ndarray) -> np.ndarray:
        """Adjoint of :meth:`apply`."""
        sums = np.zeros((*g.shape[:-1], len(self.ptr) - 1), dtype=g.dtype)
        ok = self.set_of >= 0
        np.add.at(sums, (..., self.set_of[ok]), g[..., ok])  # type: ignore[arg-type]
        owner = np.repeat(np.arange(len(self.ptr) - 1), self.sizes)
        out = np.zeros((*g.shape[:-1], self.n_in), dtype=g.dtype)
        np.add.at(out, (..., self.members), sums[..., owner])  # type: ignore[arg-type]
        return out

    def digest(self) -> bytes:
        h = hashlib.sha1()
        for a in (self.set_of, self.ptr, self.members):
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
            h.update(b"|")
        h.update(str(self.n_in).encode())
        return h.digest()


@dataclass(frozen=True, repr=False, eq=False)
class Reads(Layer):
    """Output units that read explicit sets of input units (traced layouts, reductions,
    attention). Built by ``from_torch``; fixed to the traced shapes.

    ``relations[k]`` relates input ``k`` to the output (None: no route from it);
    ``local[k]`` is its relation in context ``"local"`` (None: it only modulates).
    """

    op_name = "reads"
    arity = (1, None)
    modulates = True

    in_shapes: tuple[Shape, ...]
    out_shape: Shape
    relations: tuple[Relation | None, ...]
    local: tuple[Relation | None, ...]
    what: str = "traced layout"
    out_channels: int | None = field(default=None, kw_only=True)
    name: str | None = field(default=None, kw_only=True)
    ndim: int | None = field(init=False, repr=False, default=None)

    channel_rule: ClassVar[str] = "weighted"

    def __post_init__(self) -> None:
        # every field: equal layers are interchangeable (caches return either)
        key = (self.in_shapes, self.out_shape, self.what, self.name, self.out_channels)
        h = hashlib.sha1(repr(key).encode())
        for rel in (*self.relations, *self.local):
            h.update(b"-" if rel is None else rel.digest())
        object.__setattr__(self, "_digest", h.digest())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reads) and self._digest == other._digest  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._digest)  # type: ignore[attr-defined]

    def _expand(self, ndim: int) -> Layer:
        return self

    def spec(self) -> str:
        return f"reads<{self.what}>"

    def _repr_args(self) -> list[str]:
        return [repr(self.what), f"out_shape={self.out_shape}"]

    # -- rules ----------------------------------------------------------------------------
    def resolve(self, in_shapes: tuple[Shape | None, ...]) -> tuple[Shape | None, None]:
        for got, traced in zip(in_shapes, self.in_shapes):
            if got is not None and tuple(got) != tuple(traced):
                raise OpError(
                    f"traced for an input map of {fmt_shape(traced)}, got {fmt_shape(got)}; "
                    "trace the model again at this input size"
                )
        return self.out_shape, None

    def _back(self, rels: tuple, g: Counts, alg: Algebra) -> tuple:
        flat = alg.materialise(g).ravel()
        return tuple(
            None if rel is None else rel.back(flat, alg).reshape(shape)
            for rel, shape in zip(rels, self.in_shapes)
        )

    def _reach(self, rels: tuple, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        out = np.zeros(int(np.prod(self.out_shape)), dtype=bool)
        for rel, r in zip(rels, inputs):
            if rel is not None:
                out |= rel.forward(r.ravel())
        return out.reshape(self.out_shape)

    def routes_back(self, step: Any, g: Counts, alg: Algebra) -> tuple:
        return self._back(self.relations, g, alg)

    def local_routes_back(self, step: Any, g: Counts, alg: Algebra) -> tuple:
        return self._back(self.local, g, alg)

    def reach(self, step: Any, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        return self._reach(self.relations, inputs)

    def local_reach(self, step: Any, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        return self._reach(self.local, inputs)

    def _field(
        self, rels: tuple, inputs: tuple[tuple[Any, ...], ...], names: tuple[str, ...]
    ) -> tuple[tuple[Any, ...], str] | None:
        used = [(rel, f, n) for rel, f, n in zip(rels, inputs, names) if rel is not None]
        if not used:
            return None
        ndim = len(inputs[0])
        if any(rel.covers_input() for rel, _, _ in used):
            return (GLOBAL,) * ndim, ""
        if all(rel.is_identity() and self.out_shape == shape
               for (rel, _, _), shape in zip(used, self._used_shapes(rels))):  # fmt: skip
            # unit for unit, on the same grid: the fields of the operands, merged
            from .merges import union_fields

            return union_fields(tuple(f for _, f, _ in used), tuple(n for _, _, n in used))
        if any(f[a] is GLOBAL for _, f, _ in used for a in range(ndim)):
            return (GLOBAL,) * ndim, ""
        return (IRREGULAR,) * ndim, ""

    def _used_shapes(self, rels: tuple) -> list[Shape]:
        return [shape for rel, shape in zip(rels, self.in_shapes) if rel is not None]

    def field(self, step: Any, inputs: tuple[tuple[Any, ...], ...]) -> tuple[tuple[Any, ...], str]:
        found = self._field(self.relations, inputs, step.input_names)
        return found if found is not None else ((IRREGULAR,) * len(inputs[0]), "")

    def local_field(
        self, step: Any, inputs: tuple[tuple[Any, ...], ...]
    ) -> tuple[tuple[Any, ...], str] | None:
        return self._field(self.local, inputs, step.input_names)

    # -- backends: every output channel sums the units it reads over all input channels ---
    def _flat(self, x: np.ndarray) -> np.ndarray:
        return x.sum(axis=1).reshape(x.shape[0], -1)

    def np_forward(self, node: Any, xs: list[np.ndarray], w: Any) -> tuple[np.ndarray, Any]:
        b = xs[0].shape[0]
        out = np.zeros((b, int(np.prod(self.out_shape))))
        for rel, x in zip(self.relations, xs):
            if rel is not None:
                out = out + rel.apply(self._flat(x))
        y = np.broadcast_to(out.reshape(b, 1, *self.out_shape), (b, node.cout, *self.out_shape))
        return y.copy(), [x.shape for x in xs]

    def np_backward(self, node: Any, gy: np.ndarray, saved: Any, w: Any) -> tuple:
        g = gy.sum(axis=1).reshape(gy.shape[0], -1)
        out = []
        for rel, shape in zip(self.relations, saved):
            gi = np.zeros((shape[0], int(np.prod(shape[2:]))))
            if rel is not None:
                gi = rel.apply_t(g)
            out.append(np.broadcast_to(gi.reshape(shape[0], 1, *shape[2:]), shape).copy())
        return tuple(out)

    def torch_forward(self, node: Any, torch: Any, xs: list[Any], w: Any) -> Any:
        b = xs[0].shape[0]
        total = None
        for rel, x in zip(self.relations, xs):
            if rel is None:
                continue
            flat = x.sum(dim=1).reshape(b, -1)
            owner = torch.as_tensor(np.repeat(np.arange(len(rel.ptr) - 1), rel.sizes))
            members = torch.as_tensor(rel.members)
            sums = torch.zeros((b, len(rel.ptr) - 1), dtype=x.dtype, device=x.device)
            sums = sums.index_add(1, owner.to(x.device), flat[:, members.to(x.device)])
            pick = torch.as_tensor(np.maximum(rel.set_of, 0), device=x.device)
            ok = torch.as_tensor(rel.set_of >= 0, device=x.device)
            part = sums[:, pick] * ok
            total = part if total is None else total + part
        assert total is not None
        return total.reshape(b, 1, *self.out_shape).expand(b, node.cout, *self.out_shape)
