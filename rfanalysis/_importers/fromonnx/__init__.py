"""``from_onnx``: an ONNX graph (exported from torch, Keras, TensorFlow, JAX, ...) as a
network of the same graph nodes and DESIGN section 9 semantics as ``from_torch``.

One module per operator family (:mod:`._windows`, :mod:`._pointwise`, :mod:`._layout`,
:mod:`._resize`, :mod:`._reduce`, :mod:`._products`) registers a converter per operator type;
:mod:`._convert` walks the graph once, folding what does not depend on the input (shape
subgraphs, weight transforms) with ONNX's reference kernels at the given input size. This
package imports onnx (and onnxruntime, to verify) only when called.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..._graph import Network, check_context
from ..errors import ConversionError

__all__ = ["from_onnx", "require_onnx"]


def require_onnx(what: str = "from_onnx") -> Any:
    """The onnx module, or an ImportError naming the extra to install."""
    try:
        import onnx
    except ImportError:
        raise ImportError(
            f'{what} needs onnx, which is not installed: pip install "rfanalysis[onnx]"'
        ) from None
    return onnx


def from_onnx(
    model: Any,
    input_shape: Any = None,
    *,
    output: str | None = None,
    context: str = "global",
    verify: bool = True,
) -> Network:
    """Convert an ONNX model into a :class:`~rfanalysis.Network` graph.

    Parameters
    ----------
    model : str, os.PathLike or onnx.ModelProto
        An ``.onnx`` file or a loaded model with one input tensor: channels-first
        ``(batch, C, *spatial)`` or channels-last ``(batch, *spatial, C)`` (the layout is
        read from where the data meets the first convolution or pool).
    input_shape : int or tuple of int, optional
        Spatial input size; needed only where the file's spatial sizes are symbolic. Shape
        computations in the graph are folded at this size.
    output : str, optional
        The tensor to analyse: a graph output or any tensor name (default: the only output).
    context : {"global", "local"}
        The context the returned network's routes, coverage and geometry use by default.
    verify : bool
        Run the model with onnxruntime on a random input and again with the input changed
        outside the routes' support of three output units (the centre and two corners);
        raise if any of them changes. Without onnxruntime the check is skipped with a
        warning.

    Returns
    -------
    Network
        Nodes named after the ONNX nodes they come from.

    Raises
    ------
    ConversionError
        For an operator without a rule on the path from the input to the output (one line
        naming it and its node), a graph whose routes miss what the model computes, and
        every other conversion failure.
    ImportError
        Without onnx (``pip install "rfanalysis[onnx]"``).

    Notes
    -----
    Operators: Conv, ConvTranspose, MaxPool/AveragePool/LpPool, the global pools, Resize and
    Upsample (every mode and coordinate transformation), arithmetic with broadcasting
    (Add/Sub/Mul/Div/Pow/Max/Min/Sum/Mean: routes through each input-dependent operand add),
    Where, every element-wise activation, layout operators (Transpose, Reshape, Flatten,
    (Un)Squeeze, Expand, Tile, Slice, Split, Concat, Gather with constant indices, Pad in
    every mode, DepthToSpace/SpaceToDepth), Reduce* over any axes, MatMul/Gemm/Einsum,
    Softmax, Layer/Instance/Group/BatchNormalization, Identity/Cast/Dropout. A product of a
    tensor with a function of itself (``x * sigmoid(x)``, GELU written with Erf) is that
    tensor's activation: the identity of space, as its torch module is.

    Examples
    --------
    >>> import onnx
    >>> from onnx import TensorProto, helper
    >>> import numpy as np
    >>> import rfanalysis as rfa
    >>> w = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 3, 3], np.ones(9))
    >>> graph = helper.make_graph(
    ...     [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, "h", "w"])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    >>> model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    >>> rfa.from_onnx(model, 8).spec()
    'conv3p1'
    """
    onnx = require_onnx()
    proto, name = _load(onnx, model)
    check_context(context)
    if not isinstance(verify, bool):
        raise TypeError(f"`verify` must be a bool, got {verify!r}")
    if output is not None and not isinstance(output, str):
        raise TypeError(f"`output` must be a tensor name, got {output!r}")
    from ._convert import convert
    from ._verify import verify as check

    found = convert(onnx, proto, input_shape, output, context, name)
    if verify:
        check(onnx, found, name)
    return found.net


def _load(onnx: Any, model: Any) -> tuple[Any, str]:
    if isinstance(model, onnx.ModelProto):
        return model, model.graph.name or "model"
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise ValueError(f"`model`: no ONNX file {str(path)!r}")
        try:
            proto = onnx.load(str(path))
        except Exception as exc:
            raise ConversionError(
                f"from_onnx: {str(path)!r} is not an ONNX model ({type(exc).__name__})"
            ) from None
        return proto, path.stem
    raise TypeError(
        f"`model` must be a path to an .onnx file or an onnx.ModelProto, got {type(model).__name__}"
    )
