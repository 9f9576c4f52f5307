"""``from_torch``: hand-built torch models give the Network written by hand, and their
analytic counts equal torch autograd of the same model with all weights 1."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import rfanalysis as rfa

from .real_models import torchvision as import_torchvision

pytestmark = pytest.mark.torch


def _unnamed(net):
    """The network with every layer's name removed (names are the module paths)."""

    def strip(layer):
        if isinstance(layer, rfa.Residual):
            return rfa.Residual(
                [strip(x) for x in layer.body],
                None if layer.shortcut is None else [strip(x) for x in layer.shortcut],
            )
        if isinstance(layer, rfa.Concat):
            return rfa.Concat(*([strip(x) for x in b] for b in layer.branches))
        return dataclasses.replace(layer, name=None)

    return rfa.Network([strip(x) for x in net.layers])


# --------------------------------------------------------------------------- structure
def test_sequential_model_with_names_and_channels():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(),
        nn.Flatten(),
        nn.Linear(8 * 16 * 16, 10, bias=False),
    )
    expected = rfa.Network(
        [
            rfa.Conv((3, 3), padding=(1, 1), in_channels=3, out_channels=8, name="0"),
            rfa.Pool((2, 2), name="3"),
            rfa.Dense(10, bias=False, name="6"),
        ],
        name="Sequential",
    )
    assert rfa.from_torch(model, 32) == expected


class Block(nn.Module):
    def __init__(self, c, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c * stride, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c * stride)
        self.conv2 = nn.Conv2d(c * stride, c * stride, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c * stride)
        self.down = None
        if stride != 1:
            self.down = nn.Sequential(
                nn.Conv2d(c, c * stride, 1, stride, bias=False), nn.BatchNorm2d(c * stride)
            )

    def forward(self, x):
        identity = x if self.down is None else self.down(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return F.relu(out)


class Net(nn.Module):
    """conv/pool/residual (identity and projection)/concat/transposed/upsample/linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 7, 2, 3),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1, ceil_mode=True),
        )
        self.layer1 = Block(8)
        self.layer2 = Block(8, 2)
        self.a = nn.Conv2d(16, 4, 1)
        self.b = nn.Conv2d(16, 4, 3, padding=1, padding_mode="reflect", dilation=1)
        self.up = nn.ConvTranspose2d(24, 8, 4, 2, 1, output_padding=0)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        x = torch.cat([self.a(x), self.b(x), x], dim=1)
        x = F.interpolate(self.up(x), scale_factor=2, mode="nearest")
        return self.fc(torch.flatten(self.pool(x), 1))


def test_resnet_like_model_reproduces_its_spec():
    net = rfa.from_torch(Net(), 64)
    # written from the model: 64 -> stem 32 -> ceil-mode pool 17 (31 / 2 rounded up, + 1)
    # -> layer2 9 -> tconv 18 -> up 36; the adaptive pool to 1x1 is a global pool
    expected = rfa.Network(
        [
            rfa.Conv(7, 2, 3, in_channels=3, out_channels=8),
            rfa.Pool(3, 2, 1, ceil_mode=True),
            rfa.Residual(
                [rfa.Conv(3, 1, 1, in_channels=8, out_channels=8, bias=False)] * 2,
            ),
            rfa.Residual(
                [
                    rfa.Conv(3, 2, 1, in_channels=8, out_channels=16, bias=False),
                    rfa.Conv(3, 1, 1, in_channels=16, out_channels=16, bias=False),
                ],
                [rfa.Conv(1, 2, in_channels=8, out_channels=16, bias=False)],
            ),
            rfa.Concat(
                [rfa.Conv(1, in_channels=16, out_channels=4)],
                [rfa.Conv(3, 1, 1, padding_mode="reflect", in_channels=16, out_channels=4)],
                [],
            ),
            rfa.ConvTranspose(4, 2, 1, in_channels=24, out_channels=8),
            rfa.Upsample(2),
            rfa.GlobalPool(),
            rfa.Dense(10),
        ]
    ).expand(2)
    assert _unnamed(net) == expected
    assert [x.name for x in net.layers] == [
        "stem.0",
        "stem.3",
        "add",
        "add_1",
        "cat",
        "up",
        "interpolate",
        "pool",
        "fc",
    ]
    assert net.layers[3].shortcut[0].name == "layer2.down.0"
    assert rfa.output_shape(net, 64) == (10,)


def test_one_and_three_dimensional_models():
    m1 = nn.Sequential(
        nn.Conv1d(2, 4, 5, stride=2, padding=2, padding_mode="circular"),
        nn.AvgPool1d(3, 1, 1),
        nn.LPPool1d(2, 2),
        nn.Upsample(scale_factor=3),
    )
    assert rfa.from_torch(m1, 16).spec() == "conv5s2p2:circular,avgpool3s1p1,lppool2,up3"
    m3 = nn.Sequential(
        nn.Conv3d(1, 2, 3, dilation=2, padding="same"),
        nn.MaxPool3d(2, 2),
        nn.ConvTranspose3d(2, 1, 2, 2, groups=1),
    )
    net = rfa.from_torch(m3, (8, 6, 4))
    assert net.spec() == "conv3x3x3psamed2,maxpool2,tconv2s2"
    assert rfa.output_shape(net, (8, 6, 4)) == (8, 6, 4)


def test_functional_pools_and_interpolation():
    class Fn(nn.Module):
        def forward(self, x):
            x = F.max_pool2d(x, 3, stride=2, padding=1, dilation=1, ceil_mode=False)
            x = F.avg_pool2d(x, kernel_size=2)
            x = F.adaptive_max_pool2d(x, (2, 4))
            return F.interpolate(x, size=(6, 8), mode="nearest")

    net = rfa.from_torch(Fn(), (16, 32), in_channels=1)
    assert net.spec() == "maxpool3s2p1,avgpool2,maxpool2,up3x2"


# --------------------------------------------------------------------------- autograd oracle
class OnesNet(nn.Module):
    """One channel throughout (the concat feeds a convolution that sums its channels), sum
    pools (avg with divisor 1), every padding mode, residual, concat, transposed, upsample,
    dense. With weights 1, biases 0 and batch norm as the identity, d y_u / d x_i is the
    number of routes."""

    def __init__(self, nd):
        super().__init__()
        conv = getattr(nn, f"Conv{nd}d")
        self.stem = conv(1, 1, 5, stride=2, padding=2, padding_mode="reflect")
        # the identity in float64 (torch refuses eps = 0)
        self.bn = getattr(nn, f"BatchNorm{nd}d")(1, eps=1e-300)
        self.pool = getattr(nn, f"AvgPool{nd}d")(
            3, 2, 1, count_include_pad=True, **({"divisor_override": 1} if nd > 1 else {})
        )
        self.body1 = conv(1, 1, 3, padding=1, padding_mode="replicate")
        self.body2 = conv(1, 1, 3, padding=2, dilation=2, padding_mode="circular")
        self.down = conv(1, 1, 3, stride=2, padding=1)
        self.short = conv(1, 1, 1, stride=2)
        self.a = conv(1, 1, 1)
        self.b = conv(1, 1, 3, padding=1, padding_mode="zeros")
        self.merge = conv(3, 1, 3, padding=1, padding_mode="circular")
        self.up = getattr(nn, f"ConvTranspose{nd}d")(1, 1, 4, 2, 1)
        self.ups = nn.Upsample(scale_factor=2)
        # 48 (x 40) -> stem 24 (x 20) -> pool 12 -> down 6 -> tconv 12 -> upsample 24
        self.fc = nn.Linear({1: 24, 2: 24 * 20}[nd], 3)
        self.scale = 3 if nd == 1 else 1  # AvgPool1d has no divisor_override: x 3 by hand

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = self.pool(x) * self.scale
        x = F.relu(x + self.body2(F.relu(self.body1(x))))
        x = self.down(x) + self.short(x)
        x = self.merge(torch.cat([self.a(x), self.b(x), x], 1))
        x = self.ups(self.up(x))
        return self.fc(x.flatten(1))


def _ones(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(
                m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.Linear)
            ):
                m.weight.fill_(1.0)
                m.bias.zero_()
    return model.double().eval()


@pytest.mark.parametrize("shape", [(48,), (48, 40)])
def test_coverage_of_traced_model_equals_autograd_of_ones_weight_model(shape):
    model = _ones(OnesNet(len(shape)))
    net = rfa.from_torch(model, shape)
    x = torch.ones((1, 1, *shape), dtype=torch.float64, requires_grad=True)
    model(x).sum().backward()
    np.testing.assert_array_equal(rfa.coverage(net, shape), x.grad[0, 0].numpy())
    x.grad = None
    model(x)[0, 1].backward()  # the middle of the 3 dense outputs
    np.testing.assert_array_equal(rfa.routes(net, shape, (1,)), x.grad[0, 0].numpy())
    # the numpy influence of the traced spec (ones weights, one channel) agrees, except that
    # its avg pool averages where the model's sums: one factor of the window size, 3 per axis
    window = 3 ** len(shape)
    np.testing.assert_allclose(
        rfa.influence(net, shape, (1,)), x.grad[0, 0].numpy() / window, rtol=1e-13
    )


# --------------------------------------------------------------------------- unknown layers
class Untraceable(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace this
            return x
        return -x


class WithUnknown(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.GroupNorm(2, 4)
        self.odd = Untraceable()

    def forward(self, x):
        return self.odd(self.norm(self.conv(x)))


def test_an_untraceable_submodule_is_recorded_as_it_runs():
    model = WithUnknown()
    # fx cannot trace `odd` (data-dependent control flow): it runs on the traced input and
    # what it did is converted (here x or -x: positions kept)
    assert rfa.from_torch(model, 8).spec() == "conv3p1,groupnorm2"
    by_type = rfa.from_torch(model, 8, overrides={Untraceable: None})
    by_name = rfa.from_torch(model, 8, overrides={"odd": []})
    # group norm: statistics over the whole map, so every unit reads every unit; locally the
    # unit itself
    assert by_type.spec() == by_name.spec() == "conv3p1,groupnorm2"
    assert rfa.receptive_field(by_type, 8).is_global
    assert rfa.receptive_field(by_type, 8, context="local").size == (3, 3)
    mapped = rfa.from_torch(model, 8, overrides={Untraceable: lambda m: rfa.Conv(3, padding=1)})
    assert mapped.spec() == "conv3p1,groupnorm2,conv3p1"
    assert rfa.from_torch(model, 8, unknown="identity").spec() == "conv3p1,groupnorm2"


# --------------------------------------------------------------------------- the shape run
def _traced(model, shape, shapes):
    """What from_torch converts, on shapes (meta tensors) or running the model on values."""
    from rfanalysis._importers.fromtorch import api, output, tracing, units

    cin = api.module_in_channels(model)
    program = tracing.traced(torch, model, {}, "m")
    x = tracing._random_input(torch, (1, cin, *shape), torch.float32, torch.device("cpu"))
    wanted = [output.parse(model, None)]
    if shapes:
        try:
            return api._maps(torch, program, x.to("meta"), wanted, shape, cin, {}, "error",
                             "global", "m")[0]  # fmt: skip
        except units.NeedsValues:
            pass
    return api._maps(torch, program, x, wanted, shape, cin, {}, "error", "global", "m")[0]


def _small_torchvision(name, **kwargs):
    tv = import_torchvision()
    torch.manual_seed(0)
    return tv.models.get_model(name, **kwargs).eval()


@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (Net, (64, 64)),
        (lambda: OnesNet(1), (48,)),
        (lambda: _small_torchvision("mobilenet_v3_small"), (64, 64)),  # SE gates, hardswish
        (lambda: _small_torchvision("convnext_tiny"), (64, 64)),  # channels-last layer norms
        (lambda: _small_torchvision("swin_t"), (64, 64)),  # shifted windows, patch merging
        (lambda: _small_torchvision("vit_b_16", image_size=32), (32, 32)),  # tokens
    ],
)
def test_the_shape_run_converts_as_the_run_on_values(make, shape):
    model = make()
    on_shapes, on_values = _traced(model, shape, True), _traced(model, shape, False)
    assert on_shapes.on_shapes and not on_values.on_shapes
    assert on_shapes.net.nodes == on_values.net.nodes


def test_without_verification_the_model_does_no_arithmetic():
    model = Net()
    seen = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            m.register_forward_hook(lambda m, args, out: seen.append(args[0].device.type))
    rfa.from_torch(model, 64, verify=False)
    assert seen and set(seen) == {"meta"}
    seen.clear()
    rfa.from_torch(model, 96)  # verification: one pass on values, against autograd
    assert "cpu" in seen


class _SortedColumns(nn.Module):
    """Gathers columns in an order its input decides (argsort): what the conversion reads
    depends on values computed from the input. The order, a constant, takes the map's shape
    from it (``expand_as``)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        order = y.sum(dim=(1, 2), keepdim=True).argsort(dim=3).expand_as(y)
        return torch.gather(y, 3, order)


def test_values_computed_from_the_input_send_the_conversion_to_the_run_on_values():
    model = _SortedColumns()
    found = _traced(model, (6, 8), True)
    assert not found.on_shapes  # meta indices would gather arbitrary columns
    assert found.net.nodes == _traced(model, (6, 8), False).net.nodes
    # the columns are permuted: the coverage totals those of the convolution alone, per axis
    # 2 + 3 * 4 + 2 = 16 over 6 rows and 2 + 3 * 6 + 2 = 22 over 8 columns
    assert rfa.coverage(found.net, (6, 8)).sum() == 16 * 22


class _FxOnly(nn.Module):
    """Computes another output when torch.fx traces it than when it runs."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        if torch.fx._symbolic_trace.is_fx_tracing():
            return torch.roll(y, 1, dims=3)
        return y


def test_a_trace_that_computes_another_output_is_replaced_by_the_recording():
    model = _FxOnly()
    # verification runs the trace and the module on one input: they differ, so the module is
    # converted as it runs (the convolution alone)
    assert rfa.from_torch(model, 8).spec() == "conv3p1"
    # without verification nothing runs on values: the trace is what is converted
    assert rfa.from_torch(model, 8, verify=False).spec() != "conv3p1"


def test_unknown_function_error_and_override_checked_against_autograd():
    class Spectrum(nn.Module):
        def forward(self, x):
            return torch.fft.fft2(x).real

    model = nn.Sequential(nn.Conv2d(1, 4, 3), Spectrum())
    with pytest.raises(
        ValueError,
        match=r"no mapping for torch.fft.fft2 at node 'fft_fft2' inside module '1' "
        r"\(Spectrum\); map the module with overrides=\{Spectrum: \.\.\.\} or the operation "
        r"with overrides=\{torch.fft.fft2: \.\.\.\} .*, or pass unknown='identity'$",
    ):
        rfa.from_torch(model, (16, 16))
    # an override that says the transform keeps positions is checked against the module: every
    # output of a Fourier transform reads every pixel
    with pytest.raises(
        # conv3 on 16: 14x14; unit (6, 6) has 9 input pixels by its routes, the gradient 256
        ValueError,
        match=r"misses 247 input pixel\(s\).*they part at node 'fft_fft2'",
    ):
        rfa.from_torch(model, (16, 16), overrides={torch.fft.fft2: None})
    assert (
        rfa.from_torch(model, (16, 16), overrides={torch.fft.fft2: None}, verify=False).spec()
        == "conv3"
    )

    # a transform that changes the layout cannot stand in as the identity: no such advice
    class Half(nn.Module):
        def forward(self, x):
            return torch.fft.rfft2(x).abs()

    with pytest.raises(ValueError) as info:
        rfa.from_torch(nn.Sequential(nn.Conv2d(1, 4, 3), Half()), (16, 16), unknown="identity")
    assert "no mapping for torch.fft.rfft2" in str(info.value)
    assert "unknown='identity'" not in str(info.value)
    # what it does: every unit reads every unit, as a layer norm over space
    spread = rfa.from_torch(model, (16, 16), overrides={Spectrum: rfa.SpatialNorm("layer")})
    assert spread.spec() == "conv3,layernorm"
    # an override must keep the traced output shape
    with pytest.raises(
        ValueError, match=r"'1' maps to fc4 with output 4, but the model gives 14x14"
    ):
        rfa.from_torch(model, (16, 16), overrides={Spectrum: rfa.Dense(4)})


class _Twice(nn.Module):
    """Doubles its input: keeps every position in place."""

    def forward(self, x):
        return 2 * x


def test_two_sided_verification_catches_routes_no_gradient_reaches():
    # a wrong override maps a module that keeps positions to a 3x3 window: through two 3x3
    # convolutions the centre unit of a 9x9 map then has routes from its 7x7 block, where
    # the gradient reaches the 5x5 block. Every pixel the gradient reaches has a route, so
    # the one-sided check (verify=True) lets it pass; the two-sided check names the module
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), _Twice(), nn.Conv2d(2, 1, 3, padding=1))
    wrong = {_Twice: rfa.Conv(3, padding=1)}
    net = rfa.from_torch(model, 9, overrides=wrong)
    assert int((rfa.routes(net, 9) > 0).sum()) == 49
    with pytest.raises(
        rfa.ConversionError,
        match=r"the traced graph of Sequential gives output unit \(4, 4\) routes from 24 "
        r"input pixel\(s\) that no gradient reaches over 3 random inputs.*they part at node "
        r"'_1' \(_Twice inside module '1'\)",
    ):
        rfa.from_torch(model, 9, overrides=wrong, verify="two-sided")
    # the right mapping passes both ways
    net = rfa.from_torch(model, 9, overrides={_Twice: None}, verify="two-sided")
    expected = np.zeros((9, 9))
    expected[2:7, 2:7] = 1
    np.testing.assert_array_equal(rfa.routes(net, 9) > 0, expected)


def test_two_sided_verification_samples_the_corners():
    # a zero-padded convolution mapped as a circular one: the centre unit's routes are right,
    # but corner unit (0, 0) of the 7x7 map reads rows and columns 6, 0, 1 (9 pixels) where
    # the module reads rows and columns 0, 1 (4 pixels): 5 pixels no gradient reaches
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Conv2d(2, 2, 3, padding=1))
    wrong = {"1": rfa.Conv(3, padding=1, padding_mode="circular")}
    assert rfa.from_torch(model, 7, overrides=wrong).spec() == "conv1,conv3p1:circular"
    with pytest.raises(
        rfa.ConversionError, match=r"output unit \(0, 0\) routes from 5 input pixel\(s\)"
    ):
        rfa.from_torch(model, 7, overrides=wrong, verify="two-sided")
    # a model of ReLUs, batch norm and max pools over many channels passes
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3),
    )  # fmt: skip
    net = rfa.from_torch(model, 12, verify="two-sided")
    assert net.spec() == "conv3p1,maxpool2,conv3p1,conv3"


def test_graphs_that_nested_blocks_cannot_write_are_traced_exactly():
    class Bridge(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2, self.c3 = (
                nn.Conv2d(1, 1, 3, padding=1, bias=False) for _ in range(3)
            )

        def forward(self, x):
            a = self.c1(x)
            c = a + self.c2(x)
            return c + self.c3(a)  # a feeds both adds: no nesting of blocks writes it

    model = Bridge().double()
    for conv in (model.c1, model.c2, model.c3):
        nn.init.ones_(conv.weight)
    net = rfa.from_torch(model, 8)
    assert not net.is_tree
    with pytest.raises(ValueError, match="the compact grammar cannot write"):
        net.spec()
    # the ones-weight identity: d sum(y) / dx is the coverage, d y_unit / dx the routes
    x = torch.zeros((1, 1, 8, 8), dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(model(x).sum(), x)
    np.testing.assert_array_equal(rfa.coverage(net, 8), grad[0, 0].numpy())


class _Cat2(nn.Module):
    def forward(self, x):
        return torch.cat([x, x + 1], dim=2)


class _View(nn.Module):
    def forward(self, x):
        return x.view(1, 1, 4, 16)


def _support_of_gradients(model, shape, units):
    """For each output position, the input pixels its gradient reaches (one channel)."""
    x = torch.randn((1, 1, *shape), dtype=torch.float64, requires_grad=True)
    y = model.double()(x)
    out = []
    for u in units:
        (g,) = torch.autograd.grad(y[(0, slice(None), *u)].sum(), x, retain_graph=True)
        out.append(g[0, 0].numpy() != 0)
    return out


@pytest.mark.parametrize(
    ("model", "spec"),
    [
        (nn.Upsample(scale_factor=2, mode="bilinear"), "interps2:linear"),
        # a linear layer over the last axis of a map mixes a row's columns
        (nn.Sequential(nn.Conv2d(1, 1, 1), nn.Linear(8, 4)), None),
        (nn.Sequential(nn.Flatten(2), nn.Unflatten(2, (4, 16))), None),
        (_Cat2(), None),
        (_View(), None),
    ],
)
def test_layouts_and_resampling_trace_to_the_gradients_support(model, spec):
    net = rfa.from_torch(model, 8)  # verification against autograd is on by default
    if spec is not None:
        assert net.spec() == spec
    out = rfa.output_shape(net, (8, 8))
    units = [(0, 0), tuple((m - 1) // 2 for m in out), tuple(m - 1 for m in out)]
    for u, support in zip(units, _support_of_gradients(model, (8, 8), units)):
        np.testing.assert_array_equal(rfa.routes(net, (8, 8), u) > 0, support)


def test_adaptive_average_pool_to_three_by_hand():
    # torch's windows, floor(i * 8 / 3) to ceil((i + 1) * 8 / 3) - 1: {0,1,2} {2,3,4,5}
    # {5,6,7}, 3 or 4 pixels; pixels 2 and 5 lie in two windows per axis
    net = rfa.from_torch(nn.AdaptiveAvgPool2d(3), 8)
    assert net.spec() == "adaptiveavgpool3"
    windows = [[0, 1, 2], [2, 3, 4, 5], [5, 6, 7]]
    for unit in [(0, 0), (1, 1), (2, 1), (0, 2)]:
        expected = np.zeros((8, 8))
        expected[np.ix_(windows[unit[0]], windows[unit[1]])] = 1
        np.testing.assert_array_equal(rfa.routes(net, (8, 8), unit), expected)
    axis = np.array([1, 1, 2, 1, 1, 2, 1, 1])
    np.testing.assert_array_equal(rfa.coverage(net, (8, 8)), np.outer(axis, axis))


def test_patch_merging_counts_units_not_channels():
    # torchvision's Swin PatchMerging: _patch_merging_pad (each 2x2 block's tokens
    # concatenated along the channels, zero-padded at the end of an odd axis), LayerNorm over
    # those 4 C channels, Linear(4 C, 2 C). A unit stands for all its channels (DESIGN
    # section 2), so the counts do not depend on C. By hand, on a 7 x 9 map (4 x 5 blocks,
    # the last row and column of blocks half padding, the corner block one pixel): in
    # context "local" the norm's statistics drop and the linear layer reads each unit of
    # its block once, so every pixel reaches its token along 1 route; in "global" the
    # statistics span the block (a norm over space: each unit reads every unit of its
    # block), so a pixel reaches its token along as many routes as its block has pixels:
    # 4, 2 in the last row or column, 1 in the corner. Each pixel is in one block, so the
    # coverage is that count. The padding is a constant (no route to pixel 0).
    tv = import_torchvision()
    full = np.full((7, 9), 4)
    full[6, :] = full[:, 8] = 2
    full[6, 8] = 1
    for c in (2, 5):
        model = nn.Sequential(
            nn.Conv2d(1, c, 1),
            tv.ops.misc.Permute([0, 2, 3, 1]),
            tv.models.swin_transformer.PatchMerging(c),
            tv.ops.misc.Permute([0, 3, 1, 2]),
        )
        net = rfa.from_torch(model, (7, 9))
        assert rfa.output_shape(net, (7, 9)) == (4, 5)
        np.testing.assert_array_equal(rfa.coverage(net, (7, 9), context="local"), 1)
        np.testing.assert_array_equal(rfa.coverage(net, (7, 9)), full)
        # the centre token (1, 2) reads rows 2-3, columns 4-5
        local = np.zeros((7, 9))
        local[2:4, 4:6] = 1
        np.testing.assert_array_equal(rfa.routes(net, (7, 9), context="local"), local)
        np.testing.assert_array_equal(rfa.routes(net, (7, 9)), 4 * local)


def test_from_torch_restores_mode_and_requires_grad():
    model = Net()
    model.train()
    model.fc.weight.requires_grad_(False)
    rfa.from_torch(model, 64)
    assert all(m.training for m in model.modules())
    assert not model.fc.weight.requires_grad and model.fc.bias.requires_grad


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"`context` must be 'global' or 'local'"):
        rfa.from_torch(nn.Conv2d(1, 1, 3), 8, context="near")
    with pytest.raises(TypeError, match=r"`output` must be a name or a list of names"):
        rfa.from_torch(nn.Conv2d(1, 1, 3), 8, output=3)
    with pytest.raises(rfa.ConversionError, match=r"has no submodule 'layer9'"):
        rfa.from_torch(nn.Sequential(nn.Conv2d(1, 1, 3)), 8, output="layer9")
    with pytest.raises(TypeError, match=r"`module` must be a torch.nn.Module, got str"):
        rfa.from_torch("conv3", 8)
    with pytest.raises(ValueError, match=r"`unknown` must be 'error' or 'identity'"):
        rfa.from_torch(nn.Conv2d(1, 1, 3), 8, unknown="skip")
    with pytest.raises(TypeError, match=r"`overrides` must be a dict"):
        rfa.from_torch(nn.Conv2d(1, 1, 3), 8, overrides=[nn.Conv2d])
    with pytest.raises(TypeError, match=r"`overrides` value for .* must be a layer"):
        rfa.from_torch(nn.Conv2d(1, 1, 3), 8, overrides={nn.Conv2d: "conv3"})
    with pytest.raises(ValueError, match=r"`in_channels` must be a positive integer"):
        rfa.from_torch(nn.Conv2d(1, 1, 3), 8, in_channels=0)
    with pytest.raises(
        rfa.ConversionError, match=r"running Conv2d on an input of shape \(1, 2, 8, 8\)"
    ):
        rfa.from_torch(nn.Conv2d(1, 1, 3), 8, in_channels=2)
    with pytest.raises(ValueError, match=r"`verify` must be True, False or 'two-sided'"):
        rfa.from_torch(nn.Conv2d(1, 1, 3), 8, verify="both")
    with pytest.raises(rfa.ConversionError, match=r"Identity has no layer that changes routes"):
        rfa.from_torch(nn.Identity(), 8)
    with pytest.raises(ValueError, match=r"`output` names a map twice"):
        rfa.from_torch(nn.Conv2d(1, 1, 3), 8, output=["0", "0"])


# --------------------------------------------------------------------------- output= and errors
class _Untraceable(nn.Module):
    """fx cannot trace it (a loop over the shape of a tensor), it returns a tuple and a dict,
    and its head holds an operation without a rule that its maps do not depend on."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, padding=1)
        self.blocks = nn.ModuleList([nn.Conv2d(2, 2, 3, padding=1) for _ in range(2)])
        self.head = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        y = self.stem(x)
        maps = []
        for k in range(x.shape[1] + 1):  # Python control flow over a size: fx cannot
            y = self.blocks[k](y)
            maps.append(y)
        side = torch.fft.rfft2(self.head(y)).abs()  # no rule; nothing analysed reads it
        return maps[0], {"deep": maps[1], "side": side}


def test_a_model_fx_cannot_trace_is_recorded_as_it_runs():
    model = _Untraceable()
    assert rfa.from_torch(model, 16, output="blocks.0").spec() == "conv3p1*2"
    assert rfa.from_torch(model, 16, output="0").spec() == "conv3p1*2"
    assert rfa.from_torch(model, 16, output="1.deep").spec() == "conv3p1*3"
    nets = rfa.from_torch(model, 16, output=["blocks.0", "blocks.1"])
    assert {k: n.spec() for k, n in nets.items()} == {
        "blocks.0": "conv3p1*2",
        "blocks.1": "conv3p1*3",
    }
    # an operation without a rule on the analysed path: one line naming it and its module
    with pytest.raises(rfa.ConversionError, match=r"no mapping for torch\.fft\.rfft2 at node"):
        rfa.from_torch(model, 16, output="1.side")
    with pytest.raises(rfa.ConversionError, match=r"returns tuple; pass output="):
        rfa.from_torch(model, 16)
    with pytest.raises(rfa.ConversionError, match=r"returns no entry 'x'"):
        rfa.from_torch(model, 16, output="blocks.0.x")


def test_overrides_hold_on_the_recorded_capture():
    model = _Untraceable()
    net = rfa.from_torch(
        model, 16, output="blocks.1", overrides={"blocks.0": rfa.Conv(5, padding=2)}
    )
    assert net.spec() == "conv3p1,conv5p2,conv3p1"


def test_output_names_the_submodule_not_a_traced_node_of_that_name():
    # swin_v2_t's top-level `permute` is the final 7x7 map (a global field); its patch
    # embedding holds a traced node also called "permute" (a 56x56 map, field 4)
    model = _small_torchvision("swin_v2_t")
    net = rfa.from_torch(model, 224, output="permute")
    assert rfa.output_shape(net, 224) == (7, 7)
    assert rfa.receptive_field(net).size == ("global", "global")


def test_every_conversion_failure_is_the_public_error():
    class Spectral(nn.Module):
        def forward(self, x):
            return torch.fft.rfft2(x).abs()

    model = nn.Sequential(nn.Conv2d(1, 1, 3), Spectral())
    with pytest.raises(rfa.ConversionError) as info:
        rfa.from_torch(model, 8)
    assert type(info.value) is rfa.ConversionError  # no private class in what users see
    assert isinstance(info.value, ValueError)
    assert "_TraceFailure" not in str(info.value) and "\n" not in str(info.value)


class _SliceThenMix(nn.Module):
    """A channels-last product over the channels of a slice of rows: rows 3-5 of the map."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        y = self.conv(x).permute(0, 2, 3, 1)[:, 3:6]
        if self.how == "linear":
            y = self.lin(y)
        elif self.how == "matmul":
            y = y @ self.lin.weight.T
        else:
            y = torch.einsum("bhwc,dc->bhwd", y, self.lin.weight)
        return y.permute(0, 3, 1, 2)


@pytest.mark.parametrize("how", ["linear", "matmul", "einsum"])
def test_a_product_over_the_channels_of_a_slice_keeps_its_rows(how):
    # output row 1 is input row 4: the 3x3 window of the convolution around (4, 4)
    model = _SliceThenMix(how)
    expected = np.zeros((9, 9))
    expected[3:6, 3:6] = 1
    for verify in (False, True):
        net = rfa.from_torch(model, (9, 9), verify=verify)
        np.testing.assert_array_equal(rfa.routes(net, (9, 9), unit=(1, 4)), expected)


class _CastLike(nn.Module):
    """A 3x3 branch cast to the dtype of a 5x5 branch: the cast reads no values of it."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.small, self.large = nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 5, padding=2)

    def forward(self, x):
        y = self.large(x)
        return self.small(x).type_as(y) if self.how == "type_as" else self.small(x).to(y)


@pytest.mark.parametrize("how", ["type_as", "to"])
def test_a_cast_to_another_maps_dtype_adds_none_of_its_routes(how):
    expected = np.zeros((9, 9))
    expected[3:6, 3:6] = 1  # the 3x3 window around the centre, not the 5x5 one
    net = rfa.from_torch(_CastLike(how), (9, 9))
    np.testing.assert_array_equal(rfa.routes(net, (9, 9)), expected)


@pytest.mark.parametrize("how", ["layer", "group"])
def test_a_layer_norm_over_channels_and_space_is_a_spatial_norm(how):
    # LayerNorm([C, H, W]) has GroupNorm(1, C)'s statistics. On a 1x4 map between two
    # (1, 3) convolutions padded by 1: each conv unit j reads pixels j-1..j+1, so a pixel is
    # read by 2 3 3 2 first-conv units.
    # global: every norm unit reads every first-conv unit once. The centre unit (0, 1) reads
    #   norm units 0 1 2: each first-conv unit 3 times -> routes 3 x (2 3 3 2) = 6 9 9 6; the
    #   4 output units read 2 + 3 + 3 + 2 = 10 norm units -> coverage 20 30 30 20.
    # local: the norm is the identity: unit 1 reads first-conv units 0 1 2 -> 2 3 2 1; and
    #   the coverage of two stacked (3, pad 1) windows on 4: 5 8 8 5.
    norm = nn.LayerNorm([4, 1, 4]) if how == "layer" else nn.GroupNorm(1, 4)
    model = nn.Sequential(
        nn.Conv2d(1, 4, (1, 3), padding=(0, 1)), norm, nn.Conv2d(4, 4, (1, 3), padding=(0, 1))
    )
    net = rfa.from_torch(model, (1, 4))
    assert net.nodes[2].layer == rfa.SpatialNorm(how, groups=1 if how == "group" else None,
                                                 name="1")  # fmt: skip
    np.testing.assert_array_equal(rfa.routes(net, (1, 4)), [[6, 9, 9, 6]])
    np.testing.assert_array_equal(rfa.coverage(net, (1, 4)), [[20, 30, 30, 20]])
    np.testing.assert_array_equal(rfa.routes(net, (1, 4), context="local"), [[2, 3, 2, 1]])
    np.testing.assert_array_equal(rfa.coverage(net, (1, 4), context="local"), [[5, 8, 8, 5]])


class _Padded(nn.Module):
    """fx cannot trace it (padding computed from a size); as a leaf it has no rule."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3)

    def forward(self, x):
        if x.shape[-1] % 2:  # control flow on a size
            x = nn.functional.pad(x, (1, 1, 1, 1))
        return self.conv(x)


def test_past_the_fx_retry_limit_the_model_is_recorded(monkeypatch):
    from rfanalysis._importers.fromtorch import tracing

    monkeypatch.setattr(tracing, "MAX_RETRIES", 1)  # two untraceable submodules: past it
    model = nn.Sequential(_Padded(), _Padded())
    net = rfa.from_torch(model, 9)  # checked against its gradients
    assert rfa.output_shape(net, 9) == (9, 9)
    # two zero-padded 3x3 convolutions: the centre unit reads the 5x5 block around it
    support = rfa.routes(net, (9, 9)) > 0
    assert support.sum() == 25 and support[2:7, 2:7].all()


class _Cumulative(nn.Module):
    """fx cannot trace it; a Tensor method without a rule lies on the analysed path."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        for _ in range(x.shape[1]):  # control flow on a size: recorded
            x = self.conv(x)
        return x.cumsum(-1)


def test_a_recorded_method_is_mapped_by_its_name_or_its_function():
    model = _Cumulative()
    with pytest.raises(rfa.ConversionError, match=r"no mapping for torch\.Tensor\.cumsum"):
        rfa.from_torch(model, 8)
    for key in ("cumsum", torch.Tensor.cumsum):
        net = rfa.from_torch(model, 8, overrides={key: None}, verify=False)
        assert net.spec() == "conv3p1"


class _Named(nn.Module):
    """A submodule called ``out`` and a returned dict whose key ``out`` is another map."""

    def __init__(self):
        super().__init__()
        self.out = nn.Conv2d(1, 1, 3, padding=1)
        self.more = nn.Conv2d(1, 1, 5, padding=2)

    def forward(self, x):
        y = self.out(x)
        return {"out": self.more(y), "first": y}


def test_a_name_that_is_both_a_submodule_and_an_entry_is_refused():
    with pytest.raises(rfa.ConversionError, match=r"ambiguous: the submodule 'out' or the entry"):
        rfa.from_torch(_Named(), 8, output="out")
    assert rfa.from_torch(_Named(), 8, output="more").spec() == "conv3p1,conv5p2"
    assert rfa.from_torch(_Named(), 8, output="first").spec() == "conv3p1"
