"""``from_onnx`` on hand-built graphs: every operator rule, shape subgraphs folded at the input
size, both layouts, and the errors.

The oracle is the graph's own run: for a graph of linear operators with all weights 1, ONNX's
reference kernels in float64 on one-hot inputs give the Jacobian, and ∂y_u/∂x_i is the number
of routes (DESIGN section 2). An operator that is not linear is checked against a linear
stand-in of the same topology (a max pool against a sum pool, a product against a sum, a
softmax against a sum over its axis), written by hand beside it, or against a layer written
by hand. Every conversion also runs ``verify=True``: onnxruntime checks the routes' support
against the real operator.
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import rfanalysis as rfa

F32, F64 = TensorProto.FLOAT, TensorProto.DOUBLE


def make(nodes, in_shape, inits=None, *, dtype=F32, opset=18, outputs=("y",)):
    """A model of ``nodes`` reading ``x`` of ``in_shape`` (names for symbolic sizes);
    ``inits`` maps names to arrays (float64 arrays, the weights, take ``dtype``; float32 ones,
    such as Resize's scales, stay float32)."""
    np_type = np.float64 if dtype == F64 else np.float32
    tensors = []
    for name, arr in (inits or {}).items():
        arr = np.asarray(arr)
        if arr.dtype == np.float64:
            arr = arr.astype(np_type)
        tensors.append(numpy_helper.from_array(arr, name))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", dtype, list(in_shape))],
        [helper.make_tensor_value_info(o, dtype, None) for o in outputs],
        tensors,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def node(op, ins, outs="y", **attrs):
    return helper.make_node(op, list(ins), [outs] if isinstance(outs, str) else list(outs),
                            **attrs)  # fmt: skip


def jacobian_counts(nodes, in_shape, inits, unit, *, axes=None, out_axes=None, opset=18):
    """∂(sum of output unit ``unit``'s elements)/∂x per input position: the linear graph run
    by ONNX's reference kernels in float64 on one-hot inputs (channels summed)."""
    model = make(nodes, in_shape, inits, dtype=F64, opset=opset)
    ev = ReferenceEvaluator(model)
    rank = len(in_shape)
    axes = axes or tuple(range(2, rank))
    n = math.prod(in_shape)
    grad = np.zeros(n)
    for k in range(n):
        x = np.zeros(n)
        x[k] = 1.0
        (y,) = ev.run(None, {"x": x.reshape(in_shape)})
        oa = out_axes or tuple(range(2, y.ndim))
        index: list = [slice(None)] * y.ndim
        for a, u in zip(oa, unit):
            index[a] = u
        grad[k] = y[tuple(index)].sum()
    grad = grad.reshape(in_shape)
    other = tuple(a for a in range(rank) if a not in axes)
    return np.rint(grad.sum(axis=other)).astype(int)


def routes_of(nodes, in_shape, inits, unit, *, input_shape=None, opset=18, **kw):
    model = make(nodes, in_shape, inits, opset=opset)
    net = rfa.from_onnx(model, input_shape, **kw)
    grid = input_shape or tuple(in_shape[2:])
    return net, rfa.routes(net, grid, unit=unit, exact=True).astype(int)


def ones(*shape):
    return np.ones(shape)


def check_linear(nodes, in_shape, inits, units, oracle_nodes=None, oracle_inits=None, **kw):
    """Routes of ``nodes`` equal the Jacobian of ``oracle_nodes`` (default: the same graph)."""
    net = rfa.from_onnx(make(nodes, in_shape, inits, opset=kw.get("opset", 18)))
    grid = tuple(in_shape[2:])
    if units is None:  # the corners and the centre
        out = rfa.output_shape(net, grid)
        units = sorted({(0,) * len(out), tuple(m - 1 for m in out),
                        tuple((m - 1) // 2 for m in out)})  # fmt: skip
    for unit in units:
        got = rfa.routes(net, grid, unit=unit, exact=True).astype(int)
        want = jacobian_counts(oracle_nodes or nodes, in_shape,
                               inits if oracle_inits is None else oracle_inits, unit,
                               opset=kw.get("opset", 18))  # fmt: skip
        np.testing.assert_array_equal(got, want, err_msg=f"unit {unit}")
    return net


# --------------------------------------------------------------------------- windows
@pytest.mark.parametrize(
    "attrs",
    [
        {"pads": [1, 1, 1, 1]},
        {"pads": [2, 0, 1, 1], "strides": [2, 1]},  # asymmetric padding
        {"dilations": [2, 2], "pads": [2, 2, 2, 2]},
        {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
        {"auto_pad": "SAME_LOWER", "strides": [2, 2]},
        {"auto_pad": "VALID", "strides": [1, 2]},
    ],
)
def test_conv_padding_stride_dilation(attrs):
    nodes = [node("Conv", ["x", "w"], "c", **attrs), node("Conv", ["c", "w"], **attrs)]
    check_linear(nodes, (1, 1, 7, 8), {"w": ones(1, 1, 3, 3)}, None)


def test_conv_maps_to_the_conv_layer_written_by_hand():
    w = ones(8, 2, 3, 3)  # 4 groups of 2 input channels
    model = make([node("Conv", ["x", "w", "b"], pads=[1, 0, 1, 0], strides=[2, 2], group=4)],
                 (1, 8, 9, 9), {"w": w, "b": np.zeros(8)})  # fmt: skip
    net = rfa.from_onnx(model)
    want = rfa.Conv((3, 3), (2, 2), ((1, 1), (0, 0)), in_channels=8, out_channels=8, groups=4,
                    name="Conv_0")  # fmt: skip
    assert net.nodes[-1].layer == want


@pytest.mark.parametrize(
    ("attrs", "same_as"),
    [
        ({"strides": [2, 2]}, None),
        ({"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}, None),
        ({"strides": [2, 3], "pads": [1, 0, 0, 1]}, None),  # asymmetric: cropped unevenly
        ({"strides": [2, 2], "auto_pad": "SAME_UPPER"}, None),
        ({"strides": [2, 2], "auto_pad": "SAME_LOWER"}, None),
        # output_shape: the padding that gives it, the odd one first (the spec's rule; the
        # reference kernel cannot run output_shape itself)
        ({"strides": [2, 2], "output_shape": [9, 10]}, {"strides": [2, 2], "pads": [0, 1, 0, 0]}),
        ({"strides": [1, 1], "dilations": [2, 2]}, None),
    ],
)
def test_conv_transpose(attrs, same_as):
    nodes = [node("ConvTranspose", ["x", "w"], **attrs)]
    oracle = [node("ConvTranspose", ["x", "w"], **(same_as or attrs))]
    check_linear(nodes, (1, 1, 4, 5), {"w": ones(1, 1, 3, 3)}, None, oracle)


POOLS = [
    {"kernel_shape": [3, 3], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [2, 3], "strides": [2, 2], "pads": [0, 1, 1, 0]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [2, 2], "strides": [1, 1], "dilations": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
]


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "LpPool"])
@pytest.mark.parametrize("attrs", POOLS)
def test_pools_have_the_routes_of_a_window_sum(op, attrs):
    # the stand-in: the same windows summed (a ones-weight convolution, padding as given)
    extra = {"count_include_pad": 1} if op == "AveragePool" else {}
    model = make([node(op, ["x"], **attrs, **extra)], (1, 1, 9, 8), opset=19)
    net = rfa.from_onnx(model)
    conv_attrs = {k: v for k, v in attrs.items() if k != "ceil_mode"}
    k = attrs["kernel_shape"]
    grid = rfa.output_shape(net, (9, 8))
    if attrs.get("ceil_mode"):  # the extra window reads past the end: pad the stand-in
        conv_attrs["pads"] = list(attrs.get("pads", [0, 0, 0, 0]))
        conv_attrs["pads"][2] += 2
        conv_attrs["pads"][3] += 2
    oracle = [node("Conv", ["x", "w"], kernel_shape=k, **{a: v for a, v in conv_attrs.items()
                                                           if a != "kernel_shape"})]  # fmt: skip
    for unit in [(0, 0), (grid[0] - 1, grid[1] - 1), ((grid[0] - 1) // 2, 1)]:
        got = rfa.routes(net, (9, 8), unit=unit, exact=True).astype(int)
        want = jacobian_counts(oracle, (1, 1, 9, 8), {"w": ones(1, 1, *k)}, unit, opset=19)
        np.testing.assert_array_equal(got, want, err_msg=f"unit {unit}")


def test_pool_layers_written_by_hand():
    model = make([node("MaxPool", ["x"], "p", kernel_shape=[3, 3], strides=[2, 2],
                       pads=[1, 1, 1, 1], ceil_mode=1),
                  node("GlobalAveragePool", ["p"])], (1, 2, 9, 9))  # fmt: skip
    net = rfa.from_onnx(model)
    want = rfa.Pool((3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), ceil_mode=True, name="MaxPool_0")
    assert net.nodes[1].layer == want
    assert net.nodes[2].layer == rfa.GlobalPool("avg", name="GlobalAveragePool_1")
    # windows start at -1, 1, 3, 5, 7 (the last from ceil_mode): odd pixels lie in two
    per_axis = np.array([1, 2, 1, 2, 1, 2, 1, 2, 1])
    got = rfa.routes(net, (9, 9), exact=True).astype(int)
    np.testing.assert_array_equal(got, np.outer(per_axis, per_axis))


# --------------------------------------------------------------------------- element-wise
def _two_branches(op):
    """conv3(x) OP conv1x3(x): routes through each operand add."""
    return [
        node("Conv", ["x", "w3"], "a", pads=[1, 1, 1, 1]),
        node("Conv", ["x", "w13"], "b", pads=[0, 1, 0, 1]),
        node(op, ["a", "b"]),
    ]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean"])
def test_elementwise_of_two_maps_adds_their_routes(op):
    inits = {"w3": ones(1, 1, 3, 3), "w13": ones(1, 1, 1, 3)}
    check_linear(_two_branches(op), (1, 1, 6, 6), inits, [(0, 0), (2, 3), (5, 5)],
                 oracle_nodes=_two_branches("Add"))  # fmt: skip


def test_broadcast_operand_is_read_by_every_position():
    # x * mean(conv(x)): the pooled unit broadcasts over the map (a gate of all pixels)
    nodes = [
        node("Conv", ["x", "w"], "c", pads=[1, 1, 1, 1]),
        node("GlobalAveragePool", ["c"], "g"),
        node("Sigmoid", ["g"], "s"),
        node("Mul", ["c", "s"]),
    ]
    oracle = [
        node("Conv", ["x", "w"], "c", pads=[1, 1, 1, 1]),
        node("ReduceSum", ["c", "axes"], "g", keepdims=1),
        node("Add", ["c", "g"]),
    ]
    inits = {"w": ones(1, 1, 3, 3)}
    net = check_linear(nodes, (1, 1, 5, 5), inits, [(0, 0), (2, 2)], oracle,
                       {**inits, "axes": np.array([2, 3])})  # fmt: skip
    assert isinstance(net.nodes[-1].layer, rfa.Mul)
    # locally the gate only modulates: the convolution's window alone
    local = rfa.from_onnx(make(nodes, (1, 1, 5, 5), inits), context="local")
    got = rfa.routes(local, (5, 5), unit=(0, 0), exact=True).astype(int)
    want = np.zeros((5, 5), int)
    want[:2, :2] = 1
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "op", ["Relu", "Sigmoid", "Tanh", "HardSwish", "Gelu", "Elu", "Softplus", "Erf", "Clip",
           "Abs", "Identity", "Cast", "Dropout", "BatchNormalization"],
)  # fmt: skip
def test_activations_are_identities_of_space(op):
    attrs, extra = {}, []
    if op == "Cast":
        attrs = {"to": F32}
    if op == "BatchNormalization":
        extra = ["s", "b", "m", "v"]
    inits = {"w": ones(1, 1, 3, 3), "s": ones(1), "b": np.zeros(1), "m": np.zeros(1),
             "v": ones(1)}  # fmt: skip
    nodes = [
        node("Conv", ["x", "w"], "c", strides=[2, 2]),
        node(op, ["c", *extra], **attrs),
    ]
    net = rfa.from_onnx(make(nodes, (1, 1, 7, 7), inits, opset=20))
    assert [n.layer.spec() for n in net.nodes[1:]] == ["conv3s2"]


def test_a_product_with_a_function_of_itself_is_an_activation():
    # x * sigmoid(x) (SiLU as exports write it) and erf's GELU are pointwise in x
    nodes = [
        node("Conv", ["x", "w"], "c"),
        node("Sigmoid", ["c"], "s"),
        node("Mul", ["c", "s"], "silu"),
        node("Div", ["silu", "k"], "d"),
        node("Erf", ["d"], "e"),
        node("Add", ["e", "one"], "e1"),
        node("Mul", ["silu", "e1"]),
    ]
    inits = {"w": ones(1, 1, 3, 3), "k": np.array(1.4142), "one": np.array(1.0)}
    net = rfa.from_onnx(make(nodes, (1, 1, 6, 6), inits))
    assert [n.layer.spec() for n in net.nodes[1:]] == ["conv3"]


def test_where_with_a_constant_condition_picks_each_side():
    cond = np.zeros((1, 1, 4, 4), dtype=bool)
    cond[..., :2] = True
    nodes = [
        node("Conv", ["x", "w"], "a", pads=[1, 1, 1, 1]),
        node("Where", ["cond", "a", "x"]),
    ]
    net = rfa.from_onnx(make(nodes, (1, 1, 4, 4), {"w": ones(1, 1, 3, 3), "cond": cond}))
    left = rfa.routes(net, (4, 4), unit=(1, 1), exact=True).astype(int)
    right = rfa.routes(net, (4, 4), unit=(1, 3), exact=True).astype(int)
    want_left = np.zeros((4, 4), int)
    want_left[:3, :3] = 1
    want_right = np.zeros((4, 4), int)
    want_right[1, 3] = 1
    np.testing.assert_array_equal(left, want_left)
    np.testing.assert_array_equal(right, want_right)


# --------------------------------------------------------------------------- layout
LAYOUTS = {
    "transpose": ([node("Transpose", ["c"], "t", perm=[0, 1, 3, 2]),
                   node("Conv", ["t", "w2"])], {}),
    "reshape_roundtrip": ([node("Reshape", ["c", "s1"], "r"), node("Reshape", ["r", "s2"], "t"),
                           node("Conv", ["t", "w2"])],
                          {"s1": np.array([1, 1, -1]), "s2": np.array([1, 1, 5, 6])}),
    "slice_step": ([node("Slice", ["c", "st", "en", "ax", "sp"], "t"), node("Conv", ["t", "w2"])],
                   {"st": np.array([0, 5]), "en": np.array([5, 0]), "ax": np.array([2, 3]),
                    "sp": np.array([2, -1])}),
    "split": ([node("Split", ["c", "sizes"], ["t", "u"], axis=3), node("Conv", ["u", "w2"])],
              {"sizes": np.array([2, 3])}),
    "gather": ([node("Gather", ["c", "idx"], "t", axis=2), node("Conv", ["t", "w2"])],
               {"idx": np.array([4, 0, 2, 2])}),
    "pad_reflect": ([node("Pad", ["c", "p"], "t", mode="reflect"), node("Conv", ["t", "w2"])],
                    {"p": np.array([0, 0, 2, 1, 0, 0, 1, 2])}),
    "pad_edge": ([node("Pad", ["c", "p"], "t", mode="edge"), node("Conv", ["t", "w2"])],
                 {"p": np.array([0, 0, 2, 1, 0, 0, 1, 2])}),
    "pad_wrap": ([node("Pad", ["c", "p"], "t", mode="wrap"), node("Conv", ["t", "w2"])],
                 {"p": np.array([0, 0, 2, 1, 0, 0, 1, 2])}),
    "pad_constant": ([node("Pad", ["c", "p", "v"], "t", mode="constant"),
                      node("Conv", ["t", "w2"])],
                     {"p": np.array([0, 0, 2, 1, 0, 0, 1, 2]), "v": np.array(0.0)}),
    "tile": ([node("Tile", ["c", "reps"], "t"), node("Conv", ["t", "w2"])],
             {"reps": np.array([1, 1, 2, 1])}),
    "expand": ([node("Slice", ["c", "z", "o", "ax2"], "r"), node("Expand", ["r", "sh"], "t"),
                node("Conv", ["t", "w2"])],
               {"z": np.array([0]), "o": np.array([1]), "ax2": np.array([2]),
                "sh": np.array([1, 1, 4, 5])}),
    "depth_to_space": ([node("Conv", ["c", "w4"], "c4", pads=[1, 1, 1, 1]),
                        node("DepthToSpace", ["c4"], "t", blocksize=2, mode="CRD"),
                        node("Conv", ["t", "w2"])], {"w4": ones(4, 1, 3, 3)}),
    "space_to_depth": ([node("Slice", ["c", "z4", "e4", "ax23"], "r"),
                        node("SpaceToDepth", ["r"], "t", blocksize=2),
                        node("Conv", ["t", "w24"])],
                       {"z4": np.array([0, 0]), "e4": np.array([4, 4]),
                        "ax23": np.array([2, 3]), "w24": ones(1, 4, 2, 2)}),
    "flatten_unsqueeze": ([node("Flatten", ["c"], "f", axis=2),
                           node("Unsqueeze", ["f", "ax0"], "u"),
                           node("Squeeze", ["u", "ax0"], "q"),
                           node("Reshape", ["q", "s2"], "t"), node("Conv", ["t", "w2"])],
                          {"ax0": np.array([0]), "s2": np.array([1, 1, 5, 6])}),
    "concat_space": ([node("Concat", ["c", "c"], "t", axis=3), node("Conv", ["t", "w2"])], {}),
    "concat_channels": ([node("Conv", ["x", "w13"], "d"),
                         node("Concat", ["c", "d"], "t", axis=1),
                         node("Conv", ["t", "w22"])],
                        {"w13": ones(1, 1, 2, 2), "w22": ones(1, 2, 2, 2)}),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout_operators_move_units_as_the_data(name):
    extra, inits = LAYOUTS[name]
    nodes = [node("Conv", ["x", "w"], "c", pads=[0, 0, 1, 1]), *extra]
    inits = {"w": ones(1, 1, 3, 3), "w2": ones(1, 1, 2, 2), **inits}
    net = rfa.from_onnx(make(nodes, (1, 1, 7, 6), inits))
    grid = rfa.output_shape(net, (7, 6))
    units = {(0, 0), (grid[0] - 1, grid[1] - 1), ((grid[0] - 1) // 2, (grid[1] - 1) // 2)}
    for unit in sorted(units):
        got = rfa.routes(net, (7, 6), unit=unit, exact=True).astype(int)
        want = jacobian_counts(nodes, (1, 1, 7, 6), inits, unit)
        np.testing.assert_array_equal(got, want, err_msg=f"{name} unit {unit}")


def test_channels_last_graph_follows_the_data():
    # Keras/TF: the input is (N, H, W, C), a Transpose before the first convolution and after
    # the last; the spatial axes are 1 and 2
    nodes = [
        node("Transpose", ["x"], "t", perm=[0, 3, 1, 2]),
        node("Conv", ["t", "w"], "c", strides=[2, 2], pads=[0, 0, 1, 1]),
        node("Transpose", ["c"], "y", perm=[0, 2, 3, 1]),
    ]
    inits = {"w": ones(4, 3, 3, 3)}
    net = rfa.from_onnx(make(nodes, (1, 9, 7, 3), inits))
    assert rfa.output_shape(net, (9, 7)) == (4, 3)
    for unit in [(0, 0), (3, 2), (2, 1)]:
        got = rfa.routes(net, (9, 7), unit=unit, exact=True).astype(int)
        want = jacobian_counts(nodes, (1, 9, 7, 3), inits, unit, axes=(1, 2), out_axes=(1, 2))
        # 4 output and 3 input channels, all weights 1: every route counts 12 times
        np.testing.assert_array_equal(got * 12, want)


# --------------------------------------------------------------------------- resize
RESIZES = [
    {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
    {"mode": "nearest", "coordinate_transformation_mode": "half_pixel"},
    {"mode": "nearest", "coordinate_transformation_mode": "half_pixel",
     "nearest_mode": "round_prefer_ceil"},
    {"mode": "nearest", "coordinate_transformation_mode": "align_corners", "nearest_mode": "ceil"},
    {"mode": "linear", "coordinate_transformation_mode": "half_pixel"},
    {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"},
    {"mode": "linear", "coordinate_transformation_mode": "align_corners"},
    {"mode": "linear", "coordinate_transformation_mode": "asymmetric"},
    {"mode": "linear", "coordinate_transformation_mode": "half_pixel_symmetric"},
    {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"},
    {"mode": "cubic", "coordinate_transformation_mode": "half_pixel"},
    {"mode": "cubic", "coordinate_transformation_mode": "align_corners", "cubic_coeff_a": -0.5},
    {"mode": "cubic", "coordinate_transformation_mode": "half_pixel", "exclude_outside": 1},
    {"mode": "linear", "coordinate_transformation_mode": "half_pixel", "antialias": 1},
]  # fmt: skip


@pytest.mark.parametrize("attrs", RESIZES)
@pytest.mark.parametrize("how", ["scales", "sizes"])
def test_resize_reads_every_input_with_a_weight(attrs, how):
    inputs = {"roi": np.array([0, 0, 0.1, 0.2, 1, 1, 0.9, 0.7], dtype=np.float32)}
    if how == "scales":
        inputs["sc"] = np.array([1, 1, 2.5, 0.75], dtype=np.float32)
        args = ["x", "roi", "sc"]
    else:
        inputs["sz"] = np.array([1, 1, 9, 4])
        args = ["x", "roi", "", "sz"]
    if attrs["coordinate_transformation_mode"] != "tf_crop_and_resize":
        args[1] = ""
        del inputs["roi"]
    nodes = [node("Resize", args, **attrs)]
    net = rfa.from_onnx(make(nodes, (1, 1, 4, 6), inputs, opset=19))
    grid = rfa.output_shape(net, (4, 6))
    assert grid == ((10, 4) if how == "scales" else (9, 4))
    for unit in [(0, 0), (grid[0] - 1, grid[1] - 1), (grid[0] // 2, 1)]:
        got = rfa.routes(net, (4, 6), unit=unit, exact=True).astype(int)
        jac = jacobian_counts_float(nodes, (1, 1, 4, 6), inputs, unit)
        np.testing.assert_array_equal(got, (jac != 0).astype(int), err_msg=f"unit {unit}")


def jacobian_counts_float(nodes, in_shape, inits, unit):
    """The Jacobian of one output element (not rounded: interpolation weights)."""
    model = make(nodes, in_shape, inits, dtype=F64, opset=19)
    ev = ReferenceEvaluator(model)
    n = math.prod(in_shape)
    out = np.zeros(n)
    for k in range(n):
        x = np.zeros(n)
        x[k] = 1.0
        (y,) = ev.run(None, {"x": x.reshape(in_shape)})
        out[k] = y[(0, 0, *unit)]
    return out.reshape(in_shape[2:])


def test_resize_as_torch_writes_it_is_an_upsample_or_interpolate():
    nearest = [
        node(
            "Resize",
            ["x", "", "sc"],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )
    ]
    sc = {"sc": np.array([1, 1, 2, 2], dtype=np.float32)}
    net = rfa.from_onnx(make(nearest, (1, 3, 5, 5), sc, opset=19))
    assert net.nodes[-1].layer == rfa.Upsample((2, 2), name="Resize_0")
    linear = [
        node(
            "Resize",
            ["x", "", "sc"],
            mode="linear",
            coordinate_transformation_mode="pytorch_half_pixel",
        )
    ]
    net = rfa.from_onnx(make(linear, (1, 3, 5, 5), sc, opset=19))
    layer = net.nodes[-1].layer
    assert isinstance(layer, rfa.Interpolate) and layer.mode == "linear"


# --------------------------------------------------------------------------- reductions, norms
@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceL2"])
@pytest.mark.parametrize("axes", [[3], [2], [1, 3], [2, 3]])
def test_reductions_read_their_fibres(op, axes):
    nodes = [node("Conv", ["x", "w"], "c", pads=[1, 1, 1, 1]), node(op, ["c", "ax"], "r"),
             node("Add", ["c", "r"])]  # fmt: skip
    oracle = [node("Conv", ["x", "w"], "c", pads=[1, 1, 1, 1]),
              node("ReduceSum", ["c", "ax"], "r"), node("Add", ["c", "r"])]  # fmt: skip
    inits = {"w": ones(1, 1, 3, 3), "ax": np.array(axes)}
    check_linear(nodes, (1, 1, 5, 4), inits, [(0, 0), (2, 1), (4, 3)], oracle, inits)


def test_reduction_to_a_vector_and_a_dense_layer():
    nodes = [
        node("Conv", ["x", "w"], "c", strides=[2, 2]),
        node("ReduceMean", ["c", "ax"], "r", keepdims=0),
        node("Gemm", ["r", "fc", "b"], transB=1),
    ]
    inits = {"w": ones(4, 1, 3, 3), "ax": np.array([2, 3]), "fc": ones(10, 4), "b": np.zeros(10)}
    net = rfa.from_onnx(make(nodes, (1, 1, 7, 7), inits))
    assert [n.layer.spec() for n in net.nodes[1:]] == ["conv3s2", "gap", "fc10"]
    assert rfa.output_shape(net, (7, 7)) == (10,)


@pytest.mark.parametrize("axis", [-1, 2])
def test_softmax_reads_its_axis(axis):
    nodes = [node("Conv", ["x", "w"], "c", pads=[1, 1, 1, 1]), node("Softmax", ["c"], axis=axis)]
    oracle = [node("Conv", ["x", "w"], "c", pads=[1, 1, 1, 1]),
              node("ReduceSum", ["c", "ax"], "r"), node("Expand", ["r", "sh"])]  # fmt: skip
    inits = {"w": ones(1, 1, 3, 3)}
    oracle_inits = {**inits, "ax": np.array([axis % 4]), "sh": np.array([1, 1, 5, 4])}
    check_linear(nodes, (1, 1, 5, 4), inits, [(0, 0), (3, 2)], oracle, oracle_inits)


def test_norms_over_space_and_over_channels():
    base = [node("Conv", ["x", "w"], "c", pads=[1, 1, 1, 1])]
    inits = {"w": ones(4, 1, 3, 3), "s": ones(4), "b": np.zeros(4), "s1": ones(6),
             "b1": np.zeros(6)}  # fmt: skip
    cases = {
        "instance": ([node("InstanceNormalization", ["c", "s", "b"])],
                     rfa.SpatialNorm("instance", name="InstanceNormalization_1")),
        "group": ([node("GroupNormalization", ["c", "s", "b"], num_groups=2)],
                  rfa.SpatialNorm("group", groups=2, name="GroupNormalization_1")),
        "layer_space": ([node("LayerNormalization", ["c", "s1", "b1"], axis=-1)], None),
    }  # fmt: skip
    for name, (extra, layer) in cases.items():
        opset = 21 if name == "group" else 18
        net = rfa.from_onnx(make(base + extra, (1, 1, 5, 6), inits, opset=opset))
        if layer is not None:
            assert net.nodes[-1].layer == layer, name
        got = rfa.routes(net, (5, 6), unit=(2, 2), exact=True).astype(int)
        # a unit of the convolution reads a 3x3 window; the norm's unit reads every unit
        # its statistics read: the whole map, or its row
        rows = np.array([len(set(range(i - 1, i + 2)) & set(range(5))) for i in range(5)])
        cols = np.array([len(set(range(j - 1, j + 2)) & set(range(6))) for j in range(6)])
        if name == "layer_space":
            rows = np.array([0, 1, 1, 1, 0])
        np.testing.assert_array_equal(got, np.outer(rows, cols), err_msg=name)
    # over the channels of a channels-first map: the identity of space
    over_c = [
        *base,
        node("Transpose", ["c"], "t", perm=[0, 2, 3, 1]),
        node("LayerNormalization", ["t", "s", "b"], "n", axis=-1),
        node("Transpose", ["n"], perm=[0, 3, 1, 2]),
    ]
    net = rfa.from_onnx(make(over_c, (1, 1, 5, 6), inits))
    assert [n.layer.spec() for n in net.nodes[1:]] == ["conv3p1"]


# --------------------------------------------------------------------------- products
def test_matmul_with_weights_over_channels_is_the_identity_of_space():
    nodes = [
        node("Conv", ["x", "w"], "c", strides=[2, 2]),
        node("Transpose", ["c"], "t", perm=[0, 2, 3, 1]),
        node("MatMul", ["t", "m"], "p"),
        node("Einsum", ["p", "m2"], "e", equation="bhwc,cd->bhwd"),
        node("Transpose", ["e"], perm=[0, 3, 1, 2]),
    ]
    inits = {"w": ones(4, 1, 3, 3), "m": ones(4, 8), "m2": ones(8, 2)}
    net = rfa.from_onnx(make(nodes, (1, 1, 7, 7), inits))
    # the products keep every token at its position; the channels change (4 -> 2)
    assert [n.layer.spec() for n in net.nodes[1:]] == ["conv3s2", "reads<channels>"]
    assert net.nodes[-1].layer.relations[0].is_identity()


def test_token_mixing_matmul_reads_every_token():
    # (B, C, H*W) @ W over tokens: every output token reads every input token
    nodes = [
        node("Conv", ["x", "w"], "c"),
        node("Reshape", ["c", "s"], "t"),
        node("MatMul", ["t", "m"], "p"),
        node("Reshape", ["p", "s2"]),
    ]
    inits = {"w": ones(1, 1, 3, 3), "s": np.array([1, 1, 9]), "m": ones(9, 9),
             "s2": np.array([1, 1, 3, 3])}  # fmt: skip
    check_linear(nodes, (1, 1, 5, 5), inits, [(0, 0), (2, 1)])


def test_attention_written_out_reads_queries_keys_and_values():
    # tokens (1, L, C) from a patch convolution; softmax(q @ k^T) @ v over 4 tokens
    nodes = [
        node("Conv", ["x", "w"], "c", strides=[2, 2]),
        node("Reshape", ["c", "s"], "r"),
        node("Transpose", ["r"], "tok", perm=[0, 2, 1]),
        node("MatMul", ["tok", "wq"], "q"),
        node("MatMul", ["tok", "wk"], "k"),
        node("MatMul", ["tok", "wv"], "v"),
        node("Transpose", ["k"], "kt", perm=[0, 2, 1]),
        node("MatMul", ["q", "kt"], "a"),
        node("Add", ["a", "mask"], "am"),
        node("Softmax", ["am"], "p", axis=-1),
        node("MatMul", ["p", "v"], "o"),
        node("Transpose", ["o"], "ot", perm=[0, 2, 1]),
        node("Reshape", ["ot", "s2"]),
    ]
    mask = np.zeros((4, 4))
    mask[0, 3] = -1e4  # token 0 may not attend token 3
    inits = {"w": ones(2, 1, 2, 2), "s": np.array([1, 2, 4]), "wq": ones(2, 2),
             "wk": ones(2, 2), "wv": ones(2, 2), "mask": mask,
             "s2": np.array([1, 2, 2, 2])}  # fmt: skip
    net = rfa.from_onnx(make(nodes, (1, 1, 4, 4), inits))
    # query (0, 0) reads its own token (q) once and each allowed token twice (k and v);
    # token 3 (patch (1, 1)) is masked out
    got = rfa.routes(net, (4, 4), unit=(0, 0), exact=True).astype(int)
    patch = np.array([[3, 2], [2, 0]])
    np.testing.assert_array_equal(got, np.kron(patch, np.ones((2, 2), int)))


# --------------------------------------------------------------------------- shape subgraphs
def test_shape_subgraphs_are_folded_at_the_input_size():
    # x -> Conv -> Reshape to (N, C, H*W) with the shape computed from Shape/Gather/Mul/
    # Concat, Resize to sizes computed from Shape * 2, ConstantOfShape and Range read back
    nodes = [
        node("Conv", ["x", "w"], "c", pads=[1, 1, 1, 1]),
        node("Shape", ["c"], "sh"),
        node("Gather", ["sh", "i23"], "hw", axis=0),
        node("Mul", ["hw", "two"], "hw2"),
        node("Slice", ["sh", "z", "two1"], "nc"),
        node("Concat", ["nc", "hw2"], "size", axis=0),
        node(
            "Resize",
            ["c", "", "", "size"],
            "up",
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        ),
        node("Shape", ["up"], "sh2", start=2),
        node("ConstantOfShape", ["sh2"], "zeros", value=helper.make_tensor("v", F32, [1], [0])),
        node("Add", ["up", "zeros"], "u2"),
        node("ReduceProd", ["sh2"], "n", keepdims=1),
        node("Concat", ["nc", "n"], "flat", axis=0),
        node("Reshape", ["u2", "flat"], "f"),
        node("Shape", ["f"], "shf"),
        node("Gather", ["shf", "two_s"], "L", axis=0),
        node("Range", ["zero_s", "L", "one_s"], "ids"),
        node("Gather", ["f", "ids"], "g", axis=2),
        node("Reshape", ["g", "sh4"]),
        node("Shape", ["g"], "shg"),
        node("Slice", ["shg", "z", "two1"], "ncg"),
        node("Concat", ["ncg", "hw2"], "sh4", axis=0),
    ]
    # the last three nodes compute sh4, which Reshape reads: graph order must be topological
    nodes = nodes[:-4] + nodes[-3:] + [nodes[-4]]
    inits = {"w": ones(1, 1, 3, 3), "i23": np.array([2, 3]), "two": np.array(2),
             "z": np.array([0]), "two1": np.array([2]), "two_s": np.array(2),
             "zero_s": np.array(0), "one_s": np.array(1)}  # fmt: skip
    model = make(nodes, (1, 1, "h", "w"), inits)
    with pytest.raises(rfa.ConversionError, match=r"symbolic spatial sizes.*input_shape"):
        rfa.from_onnx(model)
    net = rfa.from_onnx(model, (5, 4))
    assert rfa.output_shape(net, (5, 4)) == (10, 8)
    fixed = [node("Conv", ["x", "w"], "c", pads=[1, 1, 1, 1]),
             node("Resize", ["c", "", "sc"], mode="nearest",
                  coordinate_transformation_mode="asymmetric", nearest_mode="floor")]  # fmt: skip
    ref = rfa.from_onnx(
        make(fixed, (1, 1, 5, 4), {"w": ones(1, 1, 3, 3), "sc": np.array([1, 1, 2, 2], np.float32)})
    )
    for unit in [(0, 0), (9, 7), (4, 3)]:
        np.testing.assert_array_equal(
            rfa.routes(net, (5, 4), unit=unit, exact=True),
            rfa.routes(ref, (5, 4), unit=unit, exact=True),
        )


# --------------------------------------------------------------------------- choices, errors
def _graph_with_custom_op():
    nodes = [
        node("Conv", ["x", "w"], "c", pads=[1, 1, 1, 1]),
        helper.make_node("FancyOp", ["c"], ["side"], domain="my.ops", name="fancy"),
        node("MaxPool", ["c"], "y", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    model = make(nodes, (1, 1, 6, 6), {"w": ones(1, 1, 3, 3)}, outputs=("y", "side"))
    model.opset_import.append(helper.make_opsetid("my.ops", 1))
    return model


def test_unknown_operator_off_the_path_is_ignored_and_on_it_named():
    model = _graph_with_custom_op()
    with pytest.raises(rfa.ConversionError, match=r"2 outputs .*'y', 'side'.*output="):
        rfa.from_onnx(model)
    net = rfa.from_onnx(model, output="y", verify=False)
    assert [n.layer.spec() for n in net.nodes[1:]] == ["conv3p1", "maxpool2"]
    # an intermediate tensor is an output too (checked by a run that reads it)
    net = rfa.from_onnx(model, output="c", verify=False)
    assert [n.layer.spec() for n in net.nodes[1:]] == ["conv3p1"]
    with pytest.raises(rfa.ConversionError) as info:
        rfa.from_onnx(model, output="side", verify=False)
    message = str(info.value)
    assert "\n" not in message
    assert "no rule for operator FancyOp (domain 'my.ops') at node 'fancy'" in message
    with pytest.raises(rfa.ConversionError, match="no tensor 'sidee'; did you mean 'side'"):
        rfa.from_onnx(model, output="sidee")


def test_intermediate_output_is_verified():
    nodes = [node("Conv", ["x", "w"], "c", pads=[1, 1, 1, 1]),
             node("MaxPool", ["c"], kernel_shape=[2, 2], strides=[2, 2])]  # fmt: skip
    net = rfa.from_onnx(make(nodes, (1, 1, 6, 6), {"w": ones(1, 1, 3, 3)}), output="c")
    assert rfa.output_shape(net, (6, 6)) == (6, 6)


def test_verification_refuses_a_wrong_graph(monkeypatch):
    from rfanalysis._importers.fromonnx import _registry

    def too_small(cx):  # a convolution mapped as 1x1: misses most of the window
        x = cx.inputs[0]
        w = cx.const(1)
        layer = rfa.Conv(1, name=cx.label)
        return [cx.conv.structured(x, [layer], (1, w.shape[0], *x.shape[2:]), cx.label)]

    monkeypatch.setitem(_registry.RULES, "Conv", too_small)
    model = make([node("Conv", ["x", "w"], pads=[1, 1, 1, 1])], (1, 1, 8, 8),
                 {"w": ones(1, 1, 3, 3)})  # fmt: skip
    with pytest.raises(rfa.ConversionError, match=r"output unit\(s\) \(3, 3\), \(0, 0\), \(7, 7\)"):
        rfa.from_onnx(model)
    assert rfa.from_onnx(model, verify=False).nodes[-1].layer.spec() == "conv1"


def test_bad_arguments():
    model = make([node("Conv", ["x", "w"])], (1, 1, 8, 8), {"w": ones(1, 1, 3, 3)})
    with pytest.raises(rfa.ConversionError, match=r"fixed spatial size \(8, 8\)"):
        rfa.from_onnx(model, (16, 16))
    with pytest.raises(TypeError, match="`model` must be a path"):
        rfa.from_onnx(42)
    with pytest.raises(ValueError, match="no ONNX file"):
        rfa.from_onnx("/nonexistent/model.onnx")
    with pytest.raises(ValueError, match="`context`"):
        rfa.from_onnx(model, context="near")
    with pytest.raises(TypeError, match="`verify`"):
        rfa.from_onnx(model, verify="yes")
    assert issubclass(rfa.ConversionError, ValueError)


def test_a_file_path(tmp_path):
    model = make([node("Conv", ["x", "w"], pads=[1, 1, 1, 1])], (1, 1, 8, 8),
                 {"w": ones(1, 1, 3, 3)})  # fmt: skip
    path = tmp_path / "tiny.onnx"
    onnx.save(model, str(path))
    net = rfa.from_onnx(path)
    assert net.name == "tiny" and net.spec() == "conv3p1"
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(rfa.ConversionError, match="is not an ONNX model"):
        rfa.from_onnx(bad)


def test_without_onnxruntime_verification_is_skipped_with_a_warning(monkeypatch):
    from rfanalysis._importers.fromonnx._verify import VerificationSkipped

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    model = make([node("Conv", ["x", "w"])], (1, 1, 8, 8), {"w": ones(1, 1, 3, 3)})
    with pytest.warns(VerificationSkipped, match="onnxruntime is not installed"):
        net = rfa.from_onnx(model)
    assert issubclass(VerificationSkipped, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rfa.from_onnx(model, verify=False) == net


def test_without_onnx_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install "rfanalysis\[onnx\]"'):
        rfa.from_onnx("model.onnx")


def test_import_rfanalysis_does_not_import_onnx():
    code = "import sys, rfanalysis; print('onnx' in sys.modules, 'onnxruntime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert out.stdout.split() == ["False", "False"]


def test_upsample_of_old_opsets():
    scales = {"sc": np.array([1, 1, 2, 3], dtype=np.float32)}
    nodes = [node("Upsample", ["x", "sc"], mode="nearest")]
    net = rfa.from_onnx(make(nodes, (1, 2, 4, 5), scales, opset=9))
    assert net.nodes[-1].layer == rfa.Upsample((2, 3), name="Upsample_0")
    bilinear = [node("Upsample", ["x", "sc"], mode="linear")]
    net = rfa.from_onnx(make(bilinear, (1, 2, 4, 5), scales, opset=9))
    grid = rfa.output_shape(net, (4, 5))
    assert grid == (8, 15)
    for unit in [(0, 0), (7, 14), (3, 7)]:
        got = rfa.routes(net, (4, 5), unit=unit, exact=True).astype(int)
        # the reference kernels know nearest only: the oracle is onnxruntime's run
        jac = ort_jacobian(make(bilinear, (1, 1, 4, 5), scales, opset=9), (1, 1, 4, 5), unit)
        np.testing.assert_array_equal(got, (jac != 0).astype(int), err_msg=f"unit {unit}")


def ort_jacobian(model, in_shape, unit):
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    n = math.prod(in_shape)
    out = np.zeros(n)
    for k in range(n):
        x = np.zeros(n, dtype=np.float32)
        x[k] = 1.0
        (y,) = session.run(None, {"x": x.reshape(in_shape)})
        out[k] = y[(0, 0, *unit)]
    return out.reshape(in_shape[2:])


def test_windows_are_recognised_from_their_groups():
    from rfanalysis._importers.fromonnx._products import _axis_window, _runs
    from rfanalysis._ops.attention import window_labels

    for n in (4, 7, 8, 14, 16):
        for w in range(2, n + 1):
            for s in (0, w // 2):
                line, _, _ = window_labels((n,), (w,), (s,))
                found = _axis_window(line)
                assert found is not None, (n, w, s)
                again, _, _ = window_labels((n,), found[:1], found[1:])
                assert _runs(again) == _runs(line), (n, w, s, found)
    assert _axis_window(np.array([0, 1, 0, 1])) is None  # strided groups are no windows
