"""The torch backend against the numpy backend on the same weights, pool gradients against
torch's own operators, and influence maps of a user's torch module."""

from __future__ import annotations

import numpy as np
import pytest

import rfanalysis as rfa

pytestmark = pytest.mark.torch

import torch  # noqa: E402 - after the marker on purpose: torch tests are required
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from .oracles import brute_coverage, brute_routes  # noqa: E402

RANDOM = dict(weights="normal", activation="relu", channels=3, trials=2, rng=11)


# --------------------------------------------------------------------------- torch == numpy
SPECS_1D = [
    "conv3p1:reflect*2,conv5s2p2:symmetric,conv3d2p2:circular,conv3p1:replicate",
    "conv3p1,maxpool3s2p1,conv3p1,avgpool2,conv3,lppool2s1,fc4",
    "res(conv3p1,conv3p1),res(conv3s2p1,conv3p1|conv1s2),cat(conv1|conv3p1|id),conv1",
    "conv3s2p1,tconv4s2p1,up2,lc3p1,maxpool2c,avgpool3s2p1c,conv2d2",
]
SPECS_2D = [*SPECS_1D, "uneven"]


def _net(spec):
    # uneven padding, dilated pools, output padding and a fractional upsampling factor
    if spec != "uneven":
        return spec
    return rfa.Network(
        [
            rfa.Conv((3, 5), (1, 2), ((1, 1), (2, 2)), padding_mode="reflect"),
            rfa.Pool(2, 1, 1, 2),
            rfa.Pool(3, dilation=2, kind="avg"),
            rfa.ConvTranspose(3, 2, ((1, 0), (1, 0)), 1),
            rfa.Upsample(1.5),
            rfa.Conv(3, padding="same"),
        ]
    )


@pytest.mark.parametrize("spec", SPECS_1D)
def test_torch_backend_equals_numpy_1d(spec):
    for unit in ["center", "all"]:
        a = rfa.influence(spec, (23,), unit, **RANDOM)
        b = rfa.influence(spec, (23,), unit, backend="torch", **RANDOM)
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12 * np.abs(a).max())
        assert np.abs(a).max() > 0


@pytest.mark.parametrize("spec", SPECS_2D)
def test_torch_backend_equals_numpy_2d(spec):
    net = _net(spec)
    for unit, reduction in [("center", "abs"), ("all", "signed")]:
        kw = dict(RANDOM, reduction=reduction)
        a = rfa.influence(net, (17, 19), unit, **kw)
        b = rfa.influence(net, (17, 19), unit, backend="torch", **kw)
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12 * np.abs(a).max())
        assert np.abs(a).max() > 0


def test_torch_backend_grouped_3d_and_float32():
    net = rfa.Network(
        [
            rfa.Conv(3, padding=1, out_channels=4, groups=2),
            rfa.ConvTranspose(2, 2, out_channels=6, groups=2),
            rfa.Pool(2, kind="lp", norm_type=3),
            rfa.Conv(3, padding=1, padding_mode="circular"),
        ]
    )
    kw = dict(RANDOM, in_channels=2)
    a = rfa.influence(net, (6, 5, 4), "all", **kw)
    np.testing.assert_allclose(
        rfa.influence(net, (6, 5, 4), "all", backend="torch", **kw), a, rtol=1e-10
    )
    a32 = rfa.influence(net, (6, 5, 4), "all", dtype="float32", **kw)
    b32 = rfa.influence(net, (6, 5, 4), "all", dtype="float32", backend="torch", **kw)
    np.testing.assert_allclose(a32, a, rtol=1e-4, atol=1e-5 * a.max())
    np.testing.assert_allclose(b32, a, rtol=1e-4, atol=1e-5 * a.max())


# --------------------------------------------------------------------------- torch's own pools
def _torch_grad(fn, x):
    xt = torch.tensor(x, requires_grad=True)
    fn(xt).sum().backward()
    return xt.grad[0].sum(0).numpy()


@pytest.mark.parametrize(
    ("layer", "fn"),
    [
        (rfa.Pool(2, kind="lp"), lambda x: F.lp_pool2d(x, 2, 2)),
        (
            rfa.Pool(3, 2, 1, kind="max", ceil_mode=True),
            lambda x: F.max_pool2d(x, 3, 2, 1, 1, True),
        ),
        (
            rfa.Pool(3, 2, 1, kind="avg", ceil_mode=True),
            lambda x: F.avg_pool2d(x, 3, 2, 1, True, count_include_pad=True),
        ),
    ],
)
def test_numpy_pools_against_torch_operators(layer, fn):
    # torch's own pooling (not the torch backend) as the oracle of the numpy gradients
    x = np.random.default_rng(0).standard_normal((1, 2, 9, 8))  # fixed seed
    m = rfa.influence(layer, (9, 8), "all", inputs=x, in_channels=2, reduction="signed")
    np.testing.assert_allclose(m, _torch_grad(fn, x), rtol=1e-12)


# --------------------------------------------------------------------------- user modules
class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        self.drop = nn.Dropout(0.5)
        self.bn = nn.BatchNorm2d(1)
        nn.init.ones_(self.conv.weight)

    def forward(self, x):
        return self.bn(self.drop(self.conv(self.conv(x))))


def test_module_influence_is_autograd_and_restores_state():
    model = Tiny().double()
    model.train()
    model.bn.eps = 1e-300  # eval: (x - 0) / sqrt(1 + 1e-300) * 1 + 0, the identity in float64
    calls = []
    handle = model.register_forward_hook(lambda *args: calls.append(1))
    model.conv.weight.requires_grad_(True)
    model.bn.weight.requires_grad_(False)
    hooks_before = dict(model._forward_hooks)
    with torch.no_grad():
        m = rfa.influence(model, (7, 7), inputs=np.ones((7, 7)))
        assert not torch.is_grad_enabled()  # restored
    # eval mode: dropout off, batch norm the identity, two ones-weight 3x3 convolutions
    np.testing.assert_array_equal(m, brute_routes("conv3p1*2", (7, 7)).astype(float))
    assert model.training and model.bn.training and model.drop.training
    assert model.conv.weight.requires_grad and not model.bn.weight.requires_grad
    assert model.conv.weight.grad is None
    assert dict(model._forward_hooks) == hooks_before and calls == [1]
    handle.remove()


def test_module_state_restored_after_an_error():
    model = Tiny()
    model.train()
    with pytest.raises(ValueError, match=r"`unit` \(9, 9\) is out of range"):
        rfa.influence(model, (7, 7), unit=(9, 9))
    assert model.training and model.conv.weight.requires_grad


def test_module_with_feature_output_and_units():
    torch.manual_seed(0)  # fixed initial weights
    # linear in x (no activation): the gradient is the same for every random input, so the
    # model's own autograd at any input gives the expected map, |dy_1/dx| summed over the
    # two input channels
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.Flatten(), nn.Linear(4 * 6, 3))
    m = rfa.influence(model, 8, unit=(1,), trials=3, rng=0)  # 1-D from the model's Conv1d
    x = torch.zeros(1, 2, 8, requires_grad=True)
    model(x)[0, 1].backward()
    np.testing.assert_allclose(m, x.grad.abs().sum(dim=(0, 1)).numpy(), rtol=1e-5)
    assert rfa.influence(model, 8, unit="all", trials=3, rng=0).shape == (8,)
    with pytest.raises(ValueError, match=r"`unit` \(3,\) is out of range on axis 0"):
        rfa.influence(model, 8, unit=(3,))


def test_module_given_inputs_match_manual_autograd():
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.Tanh(), nn.Conv2d(5, 2, 3)).double()
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 6))  # fixed seed
    m = rfa.influence(model, (6, 6), unit=(1, 2), inputs=x, reduction="signed")
    xt = torch.tensor(x, requires_grad=True)
    model(xt)[:, :, 1, 2].sum().backward()
    np.testing.assert_allclose(m, xt.grad.sum(1).mean(0).numpy(), rtol=1e-12)


def test_module_errors():
    model = nn.Conv2d(1, 1, 3)
    with pytest.raises(ValueError, match=r"`weights` applies to network specs"):
        rfa.influence(model, 8, weights="normal")
    with pytest.raises(ValueError, match=r"`channels` applies to network specs"):
        rfa.influence(model, 8, channels=4)

    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    with pytest.raises(TypeError, match=r"Pair returned tuple; influence needs one tensor"):
        rfa.influence(Pair(), 8)


def test_module_explicit_device_and_dtype():
    model = Tiny()  # float32 parameters
    m = rfa.influence(model, (7, 7), inputs=np.ones((7, 7)), device="cpu", dtype="float32")
    np.testing.assert_allclose(m, rfa.routes("conv3p1*2", (7, 7)) / np.sqrt(1 + 1e-5), rtol=1e-6)


def test_module_and_device_must_agree():
    # checked before any tensor moves, so it needs no GPU
    with pytest.raises(ValueError, match=r"Tiny's parameters are on cpu but device='cuda'"):
        rfa.influence(Tiny(), (7, 7), device="cuda")
    with pytest.raises(ValueError, match=r"device='meta'"):
        rfa.influence(Tiny(), (7, 7), device="meta")


# --------------------------------------------------------------------------- data sets
def _images(n, seed=5):
    """n one-channel 7x7 images, fixed seed."""
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, 1, 7, 7)))


class TanhNet(nn.Module):
    """A small non-linear model: its gradient depends on the image."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)  # fixed initial weights
        self.a = nn.Conv2d(1, 3, 3, padding=1)
        self.b = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


def test_influence_over_a_dataloader_is_the_mean_over_its_images():
    from torch.utils.data import DataLoader, TensorDataset

    model = TanhNet().double()
    images = _images(20)
    labels = torch.arange(20)
    loader = DataLoader(TensorDataset(images, labels), batch_size=6)  # 6 6 6 2
    m, count = rfa.influence(model, (7, 7), inputs=loader, return_count=True)
    assert count == 20
    # by hand: |d y_centre / d x| of every image, summed over the input channel, averaged
    x = images.clone().requires_grad_(True)
    model(x)[:, :, 3, 3].sum().backward()
    np.testing.assert_allclose(m, x.grad.abs().sum(1).mean(0).numpy(), rtol=1e-12)
    assert not images.requires_grad  # the data set's tensors are left alone


def test_influence_over_a_generator_of_one_channel_arrays():
    # a linear model with ones weights: every image gives the routes, so does their mean
    model = Tiny().double()
    model.bn.eps = 1e-300  # eval: batch norm is the identity in float64
    arrays = _images(9).numpy()[:, 0]  # (B, H, W): one channel, no channel axis
    batches = (arrays[i : i + 4] for i in range(0, 9, 4))  # no len(): 4 4 1
    m, count = rfa.influence(model, (7, 7), inputs=batches, return_count=True)
    assert count == 9
    np.testing.assert_array_equal(m, brute_routes("conv3p1*2", (7, 7)).astype(float))


def test_a_list_of_batches_streams_and_a_list_of_images_is_one_array():
    model = TanhNet().double()
    images = _images(5)
    whole = rfa.influence(model, (7, 7), inputs=images)
    ragged = [images[:3], images[3:]]  # (3, 1, 7, 7) and (2, 1, 7, 7): batches
    m, count = rfa.influence(model, (7, 7), inputs=ragged, return_count=True)
    assert count == 5
    np.testing.assert_allclose(m, whole, rtol=1e-12)
    singles = list(images.numpy())  # five (1, 7, 7) inputs: one array
    np.testing.assert_allclose(rfa.influence(model, (7, 7), inputs=singles), whole, rtol=1e-12)


def test_a_stream_is_consumed_one_batch_at_a_time():
    import gc
    import weakref

    model = TanhNet().double()
    alive = []

    def batches():
        for i in range(5):
            if i >= 2:
                gc.collect()
                # batch i - 1 is still the loop's current item; batch i - 2 must be gone
                assert alive[i - 2]() is None, f"batch {i - 2} is still held"
            batch = _images(3, seed=i)
            alive.append(weakref.ref(batch))
            yield batch

    assert rfa.influence(model, (7, 7), inputs=batches(), return_count=True)[1] == 15


def test_stream_progress_counts_the_inputs(capsys):
    from torch.utils.data import DataLoader

    model = TanhNet().double()
    rfa.influence(model, (7, 7), inputs=DataLoader(_images(10), batch_size=4), progress=True)
    assert capsys.readouterr().err.rstrip().endswith("100% 10 inputs")
    rfa.influence(model, (7, 7), inputs=iter([_images(3), _images(2)]), progress=True)
    assert capsys.readouterr().err.rstrip().endswith("influence 5 inputs")


def test_stream_errors():
    model = TanhNet().double()
    with pytest.raises(ValueError, match=r"`inputs` batch 1 has shape \(2, 2, 7, 7\); expected"):
        rfa.influence(model, (7, 7), inputs=iter([_images(2), torch.ones(2, 2, 7, 7)]))
    with pytest.raises(ValueError, match=r"`trials` is 4 but `inputs` is a stream of batches"):
        rfa.influence(model, (7, 7), inputs=iter([_images(2)]), trials=4)
    with pytest.raises(ValueError, match=r"`inputs` yielded no inputs"):
        rfa.influence(model, (7, 7), inputs=iter([]))
    bad = _images(2)
    bad[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"`inputs` batch 0 must be finite"):
        rfa.influence(model, (7, 7), inputs=iter([bad]))
    with pytest.raises(TypeError, match=r"`inputs` as an iterable of batches applies to torch"):
        rfa.influence("conv3p1", (7, 7), inputs=iter([np.ones((1, 1, 7, 7))]))
    with pytest.raises(TypeError, match=r"`return_count` must be True or False, got 1"):
        rfa.influence("conv3p1", (7, 7), return_count=1)


def test_return_count_of_arrays_and_specs():
    assert rfa.influence("conv3p1", (5, 5), trials=3, return_count=True)[1] == 3
    count = rfa.influence(TanhNet(), (7, 7), inputs=_images(4).numpy(), return_count=True)[1]
    assert count == 4


class ZeroHead(nn.Module):
    """A classifier whose head starts at zero (torchvision's ViT does this)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, 3)
        nn.init.zeros_(self.head.weight)

    def forward(self, x):
        return self.head(self.conv(x).mean(dim=(2, 3)))


class ZeroBranch(nn.Module):
    """A stem and a residual block whose last norm starts at zero (timm's zero_init_last):
    the block passes only its shortcut."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        self.body = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(1)
        for conv in (self.stem, self.body):
            nn.init.ones_(conv.weight)
        nn.init.zeros_(self.norm.weight)

    def forward(self, x):
        x = self.stem(x)
        return x + self.norm(self.body(x))


def test_a_zero_head_gives_a_zero_map_and_a_warning():
    with pytest.warns(rfa.InfluenceWarning) as record:
        m = rfa.influence(ZeroHead(), (9, 9), unit=(0,), trials=2)
    assert not m.any()
    (message,) = [str(w.message) for w in record]
    assert message.startswith("influence of ZeroHead: the map is zero everywhere; 1 weight ")
    assert "tensor is all zeros (head.weight) and passes no gradient" in message
    assert message.endswith("load trained weights, or re-initialise it, to see the model's field")


def test_a_zero_residual_branch_leaves_the_shortcut_and_a_warning():
    model = ZeroBranch().double()
    with pytest.warns(rfa.InfluenceWarning, match=r"all zeros \(norm\.weight\)") as record:
        m = rfa.influence(model, (9, 9), inputs=np.ones((9, 9)))
    # the stem alone: one 3x3 window of ones around the centre, 9 of 81 pixels
    window = np.zeros((9, 9))
    window[3:6, 3:6] = 1
    np.testing.assert_array_equal(m, window)
    assert "the map (9 of 81 pixels non-zero) shows only the paths around" in str(record[0].message)
    # with the norm's usual start (1), the block's body adds its routes: no warning
    nn.init.ones_(model.norm.weight)
    model.norm.eps = 1e-300  # batch norm the identity in float64
    np.testing.assert_array_equal(
        rfa.influence(model, (9, 9), inputs=np.ones((9, 9))),
        brute_routes("conv3p1,res(conv3p1)", (9, 9)).astype(float),
    )


def test_a_unit_without_input_warns():
    model = nn.ConvTranspose2d(1, 1, 1, stride=2, bias=False)  # odd outputs read no input
    nn.init.ones_(model.weight)
    with pytest.warns(rfa.InfluenceWarning, match=r"unit \(1, 1\) does not depend on the"):
        rfa.influence(model, (4, 4), unit=(1, 1))


# --------------------------------------------------------------------------- CUDA
# Run where a CUDA device exists (the CI machine has none): the same numbers as on the CPU.
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@CUDA
@pytest.mark.parametrize("spec", SPECS_2D)
def test_torch_backend_on_cuda_equals_numpy(spec):
    net, shape = _net(spec), (17, 19)
    for kw in (dict(), RANDOM):
        for unit in ("center", "all"):
            a = rfa.influence(net, shape, unit, **kw)
            b = rfa.influence(net, shape, unit, backend="torch", device="cuda", **kw)
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12 * np.abs(a).max())
            assert np.abs(a).max() > 0


@CUDA
def test_module_on_cuda_stays_there_and_matches_the_cpu():
    model = Tiny().double()
    model.bn.eps = 1e-300  # batch norm the identity in float64 (torch refuses eps = 0)
    cpu = rfa.influence(model, (7, 7), inputs=np.ones((7, 7)))
    model = model.cuda().train()
    on_gpu = rfa.influence(model, (7, 7), inputs=np.ones((7, 7)))
    np.testing.assert_array_equal(on_gpu, cpu)
    np.testing.assert_array_equal(on_gpu, rfa.routes("conv3p1*2", (7, 7)))
    assert model.training and model.conv.weight.device.type == "cuda"
    random = dict(trials=8, rng=3)
    np.testing.assert_allclose(
        rfa.influence(model, (16, 16), **random),
        rfa.influence(model.cpu(), (16, 16), **random),
        rtol=1e-10,
    )


@CUDA
def test_a_stream_on_cuda_accumulates_there_and_matches_the_cpu():
    from torch.utils.data import DataLoader

    model = TanhNet().double()
    loader = DataLoader(_images(20), batch_size=6)  # batches on the CPU, moved one at a time
    cpu = rfa.influence(model, (7, 7), inputs=loader)
    on_gpu, count = rfa.influence(model.cuda(), (7, 7), inputs=loader, return_count=True)
    assert count == 20 and model.a.weight.device.type == "cuda"
    np.testing.assert_allclose(on_gpu, cpu, rtol=1e-12)


def _ones(model):
    for p in model.parameters():
        nn.init.ones_(p)
    return model.double()


def test_module_output_by_submodule_name_is_that_maps_gradient():
    # single channel, all weights 1: the gradient of a unit of an inner map is its route count
    model = _ones(
        nn.Sequential(
            nn.Conv2d(1, 1, 3, padding=1, bias=False),
            nn.Sequential(nn.Conv2d(1, 1, 3, stride=2, bias=False), nn.ReLU()),
            nn.Conv2d(1, 1, 5, bias=False),
        )
    )
    x = torch.rand(1, 1, 17, 17, dtype=torch.float64) + 0.5  # ReLU passes: positive maps
    got = rfa.influence(model, (17, 17), output="1", inputs=x[0], unit=(2, 5))
    np.testing.assert_array_equal(got, rfa.routes("conv3p1,conv3s2", (17, 17), unit=(2, 5)))
    np.testing.assert_array_equal(
        got, rfa.routes(rfa.from_torch(model, 17, output="1"), 17, unit=(2, 5))
    )
    # ... and the same through autograd of the truncated model by hand
    trunk = nn.Sequential(*list(model)[:2])
    xr = x.clone().requires_grad_(True)
    trunk(xr)[0, 0, 2, 5].backward()
    np.testing.assert_array_equal(got, xr.grad[0, 0].abs().numpy())


def test_module_output_by_dict_key_and_bad_names():
    class Heads(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Conv2d(1, 1, 3, bias=False)
            self.aux = nn.Conv2d(1, 1, 5, bias=False)

        def forward(self, x):
            y = self.body(x)
            return {"out": y, "aux": self.aux(y)}

    model = _ones(Heads())
    got = rfa.influence(model, (12, 12), output="aux", unit="all")
    np.testing.assert_array_equal(got, brute_coverage("conv3,conv5", (12, 12)).astype(float))
    with pytest.raises(ValueError, match=r"`output` 'head' is neither a submodule of Heads nor "
                       r"a key of the dict it returns \(its keys: 'out', 'aux'\)"):  # fmt: skip
        rfa.influence(model, (12, 12), output="head")
    with pytest.raises(TypeError, match=r"Heads returned dict; influence needs one tensor: name "
                       r"it with `output`"):  # fmt: skip
        rfa.influence(model, (12, 12))
    with pytest.raises(TypeError, match=r"`output` selects a map inside a torch module"):
        rfa.influence("conv3", (12, 12), output="x")
