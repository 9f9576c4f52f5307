"""Check a converted graph against the model itself, with onnxruntime: change the input
everywhere outside the routes' support of a few output units; those units must not change."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..._engine import routes
from ..errors import ConversionError
from ._convert import Imported

#: a unit "changes" when it moves by more than this fraction of the output's largest value
RELATIVE_CHANGE = 1e-5
#: the newest ONNX IR version the models are handed to onnxruntime at
MAX_IR_VERSION = 10


class VerificationSkipped(UserWarning):
    """``from_onnx`` could not check its graph against the model (onnxruntime is missing)."""


def sample_units(out_grid: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The centre unit, the first and the last."""
    centre = tuple((m - 1) // 2 for m in out_grid)
    found: list[tuple[int, ...]] = []
    for u in (centre, (0,) * len(out_grid), tuple(m - 1 for m in out_grid)):
        if u not in found:
            found.append(u)
    return found


def verify(onnx: Any, found: Imported, name: str) -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        warnings.warn(
            f"from_onnx: onnxruntime is not installed, so the graph of {name} was not checked "
            'against the model (pip install "rfanalysis[onnx]")',
            VerificationSkipped,
            stacklevel=3,
        )
        return
    proto = type(found.proto)()
    proto.CopyFrom(found.proto)
    # onnxruntime refuses IR versions newer than it knows; a model that uses no newer
    # feature (onnx.helper's default for a hand-built one) runs at an older one
    proto.ir_version = min(proto.ir_version, MAX_IR_VERSION)
    if found.output not in [o.name for o in proto.graph.output]:
        del proto.graph.output[:]
        proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(found.output))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise ConversionError(
            f"from_onnx: onnxruntime cannot load {name} to check the graph "
            f"({type(exc).__name__}: {_line(exc)}); pass verify=False to skip the check"
        ) from None
    dtype = onnx.helper.tensor_dtype_to_np_dtype(found.elem_type)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(found.input_shape).astype(dtype)

    def run(data: np.ndarray) -> np.ndarray:
        try:
            out = session.run([found.output], {found.input_name: data})[0]
        except Exception as exc:
            raise ConversionError(
                f"from_onnx: onnxruntime cannot run {name} on an input of shape "
                f"{found.input_shape} ({type(exc).__name__}: {_line(exc)}); pass verify=False "
                "to skip the check"
            ) from None
        return np.asarray(out, dtype=np.float64)

    y = run(x)
    if tuple(y.shape) != tuple(found.output_shape):
        raise ConversionError(
            f"from_onnx: tensor {found.output!r} of {name} has shape {tuple(y.shape)} in "
            f"onnxruntime, but the conversion gives {tuple(found.output_shape)}; please report "
            "this"
        )
    finite = np.abs(y[np.isfinite(y)])
    tol = RELATIVE_CHANGE * max(float(finite.max()) if finite.size else 0.0, 1e-30)
    again = run(x)
    if _changed(again, y, tol).any():
        raise ConversionError(
            f"from_onnx: {name} gives another output on the same input (random operators?), "
            "so the graph cannot be checked; pass verify=False to skip the check"
        )
    out_grid = tuple(found.output_shape[a] for a in found.output_axes) or (1,)
    units = sample_units(out_grid)
    grid = tuple(found.input_shape[a] for a in found.input_axes)
    support = np.zeros(grid, dtype=bool)
    for u in units:
        support |= routes(found.net, grid, unit=u, log=True, context="global") > -np.inf
    if support.all():
        return  # every pixel reaches these units: nothing to change
    changed = x.copy()
    outside = ~support
    index: list[Any] = [slice(None)] * len(found.input_shape)
    moved = np.moveaxis(changed, found.input_axes, tuple(range(len(grid))))
    fresh = rng.standard_normal(moved[outside].shape) * 3.0 + 1.0
    moved[outside] = fresh.astype(dtype)
    y2 = run(changed)
    bad = []
    for u in units:
        index = [slice(None)] * y.ndim
        for a, c in zip(found.output_axes, u):
            index[a] = c
        if _changed(y2[tuple(index)], y[tuple(index)], tol).any():
            bad.append(u)
    if bad:
        raise ConversionError(
            f"from_onnx: the graph of {name} is wrong: output unit(s) "
            f"{', '.join(map(str, bad))} change when the input changes only outside their "
            "routes' support; please report this (or pass verify=False)"
        )


def _changed(a: np.ndarray, b: np.ndarray, tol: float) -> np.ndarray:
    """Elements that differ by more than ``tol`` (NaN where the other is a number; NaN and
    NaN, or the same infinity, are unchanged)."""
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore"):
        close = np.abs(a - b) <= tol
    return ~(same | close)


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
