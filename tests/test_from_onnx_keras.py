"""``from_onnx`` of Keras models exported on the torch backend (``model.export(path,
format="onnx")``): channels-last ONNX, TF-style ``"same"`` padding. The oracle is the Keras
model's own gradient (torch autograd, in a subprocess with ``KERAS_BACKEND=torch``): no pixel
that the gradient of an output unit reaches lacks a route, and for a small network with
generic weights, no activation that zeroes gradients and no max pool (whose gradient
reaches only the maximum), the two supports are equal.

Keras applications are cut at half their depth (a map of 6x6 units at input 96, whose
fields do not all cover the input where there is no squeeze-and-excitation gate), which also
keeps the exports short.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import rfanalysis as rfa

pytestmark = pytest.mark.torch

APPLICATIONS = ["MobileNetV3Small", "ResNet50", "EfficientNetB0", "DenseNet121", "MobileNetV2"]
SIZE = 96

SCRIPT = textwrap.dedent(
    """
    import os, sys, warnings
    warnings.filterwarnings("ignore")
    import keras, numpy as np, torch

    out, size, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    keras.utils.set_random_seed(0)

    def small():
        L = keras.layers
        x = keras.Input((size, size, 3))
        a = L.Conv2D(8, 3, strides=2, padding="same", activation="tanh")(x)  # TF SAME
        b = L.DepthwiseConv2D(5, padding="same")(a)
        c = L.AveragePooling2D(3, strides=2, padding="same")(b)
        d = L.UpSampling2D(2, interpolation="bilinear")(c)
        e = L.Concatenate()([a, d])
        f = L.Conv2D(8, 3, dilation_rate=2, padding="same")(e)
        g = L.Add()([f, L.Conv2D(8, 1)(a)])
        h = L.AveragePooling2D(2)(g)
        return keras.Model(x, L.Conv2D(4, (3, 1), strides=(1, 2), padding="valid")(h))

    for name in names:
        if name == "small":
            model = small()
        else:
            full = getattr(keras.applications, name)(
                input_shape=(size, size, 3), weights=None, include_top=False)
            maps = [layer for layer in full.layers if len(layer.output.shape) == 4]
            model = keras.Model(full.input, maps[len(maps) // 2].output)
        model(np.zeros((1, size, size, 3), "float32"))
        model.export(os.path.join(out, name + ".onnx"), format="onnx", verbose=False)
        x = torch.randn(1, size, size, 3, generator=torch.Generator().manual_seed(1))
        x.requires_grad_(True)
        y = model(x)
        h, w = y.shape[1], y.shape[2]
        units = [((h - 1) // 2, (w - 1) // 2), (0, 0), (h - 1, w - 1), (0, w - 1)]
        support = []
        for i, j in units:
            (g,) = torch.autograd.grad(y[0, i, j, :].sum(), x, retain_graph=True)
            g = g[0].abs().sum(dim=-1).detach().numpy()
            support.append(g > 0)  # no path gives an exact zero; any path a number
        np.savez(os.path.join(out, name + ".npz"), units=np.array(units),
                 support=np.array(support))
    """
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras")
    env = dict(os.environ, KERAS_BACKEND="torch", OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(folder), str(SIZE), "small", *APPLICATIONS],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


def _converted(folder, name):
    net = rfa.from_onnx(folder / f"{name}.onnx")  # verified with onnxruntime
    data = np.load(folder / f"{name}.npz")
    return net, data["units"], data["support"]


@pytest.mark.parametrize("name", APPLICATIONS)
def test_keras_application_gradient_has_routes(name, exported):
    net, units, support = _converted(exported, name)
    out = rfa.output_shape(net, (SIZE, SIZE))
    assert out == (6, 6)
    partial = 0
    for unit, grad in zip(units, support):
        routes = rfa.routes(net, (SIZE, SIZE), unit=tuple(unit), log=True) > -np.inf
        missing = grad & ~routes
        assert not missing.any(), f"{name} unit {tuple(unit)}: {missing.sum()} pixels"
        partial += not routes.all()
    if name in ("ResNet50", "MobileNetV2"):  # no squeeze-and-excitation: local fields
        assert partial, f"{name}: every field covers the input; the check says little"


def test_small_keras_network_has_exactly_the_gradient_support(exported):
    net, units, support = _converted(exported, "small")
    # 96 -> 48 (stride-2 "same") -> 24 (pool) -> 48 (upsampling) -> 24 (pool) -> 22 x 12
    assert rfa.output_shape(net, (SIZE, SIZE)) == (22, 12)
    for unit, grad in zip(units, support):
        routes = rfa.routes(net, (SIZE, SIZE), unit=tuple(unit), exact=True) > 0
        np.testing.assert_array_equal(routes, grad, err_msg=f"unit {tuple(unit)}")
