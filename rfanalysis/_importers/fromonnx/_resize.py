"""Resize and Upsample: each output unit reads the input units with a non-zero interpolation
weight (DESIGN section 9), in every mode and coordinate transformation.

The weights along each axis are those of ONNX's reference kernel, run on the identity matrix
(the operator is separable and linear): whatever the attributes (nearest_mode, cubic_coeff_a,
exclude_outside, antialias, tf_crop_and_resize with its region), the routes are the kernel's
own. Where they are those of a torch interpolation, the node is an ``Upsample`` or
``Interpolate``; else a relation."""

from __future__ import annotations

import itertools
import math

import numpy as np

from ..._ops import Interpolate, Layer, Upsample
from ..._ops.reads import Reads, Relation
from ..._ops.resample import interpolation_weights
from ..units import channels, dedupe_sets, varying_axes
from ._registry import Ctx, rule
from ._units import Value, canonical_units


def _axis_weights(cx: Ctx, onnx, n: int, how: str, amount: float, roi: tuple) -> np.ndarray:
    """The (m, n) weights of one axis: the node's own kernel on the identity."""
    attrs = {k: v for k, v in cx.attrs.items() if k not in ("axes", "keep_aspect_ratio_policy")}
    eye = np.eye(n, dtype=np.float64)
    if cx.op == "Upsample" or len(cx.node.input) == 2:
        # opsets 7-10 (X, scales): x_original = x / scale, nearest rounding down, which is
        # Resize-13's "asymmetric" transformation (the reference kernel of the old operator
        # knows nearest only)
        mode = attrs.get("mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        node = onnx.helper.make_node(
            "Resize", ["x", "", "s"], ["y"], mode="nearest" if mode == "nearest" else "linear",
            coordinate_transformation_mode="asymmetric", nearest_mode="floor",
        )  # fmt: skip
        from onnx.reference import ReferenceEvaluator

        scales = np.array([1.0, amount], dtype=np.float32)
        (y,) = ReferenceEvaluator(node, opsets={"": 13}).run(None, {"x": eye, "s": scales})
        return np.asarray(y, dtype=np.float64).T
    else:
        node = onnx.helper.make_node(cx.op, ["x", "roi", "s", "z"], ["y"], **attrs)
        r = np.array([0.0, roi[0], 1.0, roi[1]], dtype=np.float32)
        if how == "scale":
            feeds = [eye, r, np.array([1.0, amount], dtype=np.float32), None]
        else:
            feeds = [eye, r, None, np.array([n, int(amount)], dtype=np.int64)]
        if feeds[3] is None:
            node = onnx.helper.make_node(cx.op, ["x", "roi", "s"], ["y"], **attrs)
            feeds = feeds[:3]
        else:
            node = onnx.helper.make_node(cx.op, ["x", "roi", "", "z"], ["y"], **attrs)
            feeds = [feeds[0], feeds[1], None, feeds[3]]
    (y,) = cx.run(feeds, node)
    return np.asarray(y, dtype=np.float64).T  # (m, n): output j's weights on inputs


def _plan(cx: Ctx, shape: tuple[int, ...]) -> list[tuple[str, float, tuple]]:
    """Per axis: ("scale", s) or ("size", m), and the region of interest (start, end)."""
    rank = len(shape)
    if cx.op == "Upsample" or len(cx.node.input) == 2:
        scales = cx.const(1) if len(cx.node.input) > 1 else cx.attr("scales")
        return [("scale", float(v), (0.0, 1.0)) for v in np.asarray(scales)]
    axes = [int(a) % rank for a in cx.attr("axes", list(range(rank)))]
    roi = cx.const(1)
    scales = cx.const(2)
    sizes = cx.const(3)
    rois = [(0.0, 1.0)] * rank
    if roi is not None and roi.size == 2 * len(axes):
        for j, a in enumerate(axes):
            rois[a] = (float(roi[j]), float(roi[j + len(axes)]))
    plan = [("scale", 1.0, rois[a]) for a in range(rank)]
    if sizes is not None and sizes.size:
        policy = cx.attr("keep_aspect_ratio_policy", b"stretch")
        policy = policy.decode() if isinstance(policy, bytes) else policy
        want = {a: int(sizes[j]) for j, a in enumerate(axes)}
        if policy != "stretch":
            ratios = [want[a] / shape[a] for a in axes]
            r = min(ratios) if policy == "not_larger" else max(ratios)
            want = {a: round(r * shape[a]) for a in axes}
        for a, m in want.items():
            plan[a] = ("size", float(m), rois[a])
    elif scales is not None and scales.size:
        for j, a in enumerate(axes):
            plan[a] = ("scale", float(scales[j]), rois[a])
    return plan


@rule("Resize", "Upsample")
def resize(cx: Ctx) -> list:
    import onnx

    x = cx.inputs[0]
    if not isinstance(x, Value):
        raise cx.fail("resizing a tensor that is not the input's map")
    shape = x.shape
    weights: list[np.ndarray | None] = []
    for a, (how, amount, roi) in enumerate(_plan(cx, shape)):
        if how == "scale" and amount == 1.0 and roi == (0.0, 1.0):
            weights.append(None)  # untouched
            continue
        w = _axis_weights(cx, onnx, shape[a], how, amount, roi)
        weights.append(None if np.array_equal(w, np.eye(shape[a])) else w)
    resized = tuple(a for a, w in enumerate(weights) if w is not None)
    if 0 in resized:
        raise cx.fail("resizing the batch axis")
    out_shape = tuple(
        shape[a] if w is None else w.shape[0] for a, w in enumerate(weights)
    )  # fmt: skip
    axes = tuple(sorted((set(varying_axes([x.units])) | set(resized)) - {0}))
    per_axis = [
        weights[a] if weights[a] is not None else np.eye(shape[a]) for a in axes
    ]  # fmt: skip
    support: list[np.ndarray] = [np.asarray(w) != 0 for w in per_axis]
    layer = _as_layer(cx, support, [shape[a] for a in axes], [
        _plan(cx, shape)[a] for a in axes])  # fmt: skip
    if layer is not None:
        return [cx.conv.structured(x, [layer], out_shape, cx.label, axes=axes)]
    node = cx.conv.canonical(x, axes, cx.label)
    in_grid = cx.conv.grid(node)
    out_grid = tuple(s.shape[0] for s in support)
    rel = _separable_relation(support, in_grid)
    chans = channels(out_shape, axes)
    layer = Reads((in_grid,), out_grid, (rel,), (rel,), "resize", out_channels=chans,
                  name=cx.label)  # fmt: skip
    node = cx.graph.add(layer, (node,), cx.label, chans)
    return [Value(node, canonical_units(out_shape, axes))]


def _as_layer(cx: Ctx, support: list[np.ndarray], ns: list[int], plan: list) -> Layer | None:
    """An ``Upsample`` or ``Interpolate`` with exactly these supports, else None."""
    ms = [s.shape[0] for s in support]
    factors = [m // n if m % n == 0 else 0 for n, m in zip(ns, ms)]
    if all(factors):
        want = [np.eye(n, dtype=bool).repeat(f, axis=0) for n, f in zip(ns, factors)]
        if all(np.array_equal(s, w) for s, w in zip(support, want)):
            if any(f != 1 for f in factors):
                return Upsample(tuple(factors), name=cx.label)
    scales = [amount for how, amount, _ in plan]
    by_scale = all(how == "scale" for how, _, _ in plan)
    for mode in ("nearest", "nearest-exact", "linear", "cubic", "area"):
        for corners in (False, True):
            if corners and mode not in ("linear", "cubic"):
                continue
            for use_scale in (False, True) if by_scale else (False,):
                ok = all(
                    np.array_equal(
                        interpolation_weights(n, m, mode, corners, s if use_scale else None) != 0,
                        sup,
                    )
                    for n, m, s, sup in zip(ns, ms, scales, support)
                )
                if not ok:
                    continue
                if use_scale:
                    layer = Interpolate(None, tuple(scales), mode, corners, name=cx.label)
                else:
                    layer = Interpolate(tuple(ms), None, mode, corners, name=cx.label)
                grid, _ = layer.resolve((tuple(ns),))
                if grid is not None and tuple(grid) == tuple(ms):
                    return layer
    return None


def _separable_relation(support: list[np.ndarray], in_grid: tuple[int, ...]) -> Relation:
    """Output unit (j1, j2, ...) reads every (i1, i2, ...) with each i_a read by j_a."""
    per: list[tuple[np.ndarray, list[np.ndarray]]] = []
    for s in support:
        rows = [np.flatnonzero(r) for r in s]
        per.append(dedupe_sets(rows))
    strides = [math.prod(in_grid[a + 1 :]) for a in range(len(in_grid))]
    combos: dict[tuple[int, ...], int] = {}
    sets: list[np.ndarray] = []
    out_ids = []
    for js in itertools.product(*[range(len(ids)) for ids, _ in per]):
        key = tuple(int(per[a][0][j]) for a, j in enumerate(js))
        if key not in combos:
            if any(k < 0 for k in key):
                combos[key] = -1
            else:
                flat = np.zeros(1, dtype=np.int64)
                for a, k in enumerate(key):
                    flat = (flat[:, None] + per[a][1][k][None, :] * strides[a]).ravel()
                combos[key] = len(sets)
                sets.append(np.sort(flat))
        out_ids.append(combos[key])
    return Relation.from_sets(math.prod(in_grid), np.asarray(out_ids, dtype=np.int64), sets)
