"""Tiled inference of torch modules (float64, random weights) against their whole-image run."""

from __future__ import annotations

import numpy as np
import pytest

import rfanalysis as rfa

pytestmark = pytest.mark.torch

import torch  # noqa: E402 - after the marker on purpose: torch tests are required
from torch import nn  # noqa: E402


class UNet(nn.Module):
    """Two levels: max-pool down, transposed convolution up, concat of the skip."""

    def __init__(self, c: int = 4):
        super().__init__()
        self.e1 = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1)
        )
        self.e2 = nn.Sequential(nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU())
        self.e3 = nn.Sequential(nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.ReLU())
        self.u3 = nn.ConvTranspose2d(2 * c, 2 * c, 2, stride=2)
        self.d2 = nn.Conv2d(4 * c, 2 * c, 3, padding=1)
        self.u2 = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.d1 = nn.Conv2d(2 * c, 2, 3, padding=1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        a = self.e1(x)
        b = self.e2(self.pool(a))
        c = self.e3(self.pool(b))
        b = self.d2(torch.cat([b, self.u3(c)], 1))
        return self.d1(torch.cat([a, self.u2(b)], 1))


def check(module, image, tile, in_channels=1, batch_size=4):
    module = module.double().eval()
    torch.manual_seed(0)
    x = torch.randn(2, in_channels, *image, dtype=torch.float64)
    with torch.no_grad():
        whole = module(x)
    t = rfa.tiling(module, tile)
    written = np.zeros(tuple(whole.shape[2:]), dtype=int)
    for _, out_sl, _ in t.windows(image):
        written[out_sl] += 1
    assert (written == 1).all()
    got = rfa.tiled(module, x, tile, batch_size=batch_size)
    assert got.shape == whole.shape
    torch.testing.assert_close(got, whole, rtol=0, atol=1e-10)
    return t


def _torchvision():
    from . import real_models

    return real_models.torchvision()


def test_resnet18_trunk():
    """Up to layer2 (jump 8): the whole trunk's 435-pixel field needs tiles over 442 pixels,
    too slow in float64 on a CPU for the test suite."""
    tv = _torchvision()
    torch.manual_seed(0)
    trunk = nn.Sequential(*list(tv.models.resnet18().children())[:-4])
    t = check(trunk, (170, 150), (128, 128), in_channels=3)
    assert t.alignment == (8, 8)


def test_mobilenet_v2_features():
    tv = _torchvision()
    torch.manual_seed(0)
    check(tv.models.mobilenet_v2().features[:8], (150, 110), (128, 128), in_channels=3)


def test_unet_with_transposed_convolutions_and_concat():
    torch.manual_seed(0)
    t = check(UNet(), (100, 84), (56, 56))
    assert t.alignment == (4, 4)


def test_dilated_reflect_and_replicate_padding():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=2, dilation=2, padding_mode="reflect"),
        nn.ReLU(),
        nn.Conv2d(3, 3, 3, padding=1, padding_mode="replicate"),
        nn.ReLU(),
        nn.Conv2d(3, 2, 5, padding=2, padding_mode="reflect", stride=2),
    )
    check(net, (67, 45), (30, 30))


def test_valid_strided_convolutions():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 5, stride=2), nn.ReLU(), nn.Conv2d(3, 2, 3, stride=2))
    check(net, (71, 58), (33, 33))


def test_one_and_three_dimensional_modules():
    torch.manual_seed(0)
    one = nn.Sequential(nn.Conv1d(1, 3, 5, padding=2), nn.ReLU(), nn.Conv1d(3, 2, 3, stride=2))
    check(one, (203,), (40,))
    three = nn.Sequential(
        nn.Conv3d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv3d(2, 2, 3, stride=2, padding=1)
    )
    check(three, (21, 17, 13), (12, 12, 12))


class SE(nn.Module):
    def __init__(self, c: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(1, c, 3, padding=1)
        self.fc = nn.Conv2d(c, c, 1)

    def forward(self, x):
        y = self.conv(x)
        return y * torch.sigmoid(self.fc(y.mean((2, 3), keepdim=True)))


@pytest.mark.parametrize(
    "make",
    [
        SE,
        lambda: nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.Conv2d(4, 2, 3)
        ),
    ],
    ids=["se", "groupnorm"],
)
def test_global_context_is_named_and_its_deviation_measured(make):
    torch.manual_seed(0)
    module = make().double().eval()
    t = rfa.tiling(module, 32, input_shape=(64, 64))
    assert not t.exact and t.global_layers
    x = torch.randn(1, 1, 90, 90, dtype=torch.float64)
    with pytest.raises(ValueError, match="not exact under tiling"):
        rfa.tiled(module, x, 32, input_shape=(64, 64))
    with pytest.warns(rfa.TilingWarning):
        y = rfa.tiled(module, x, 32, input_shape=(64, 64), context="local")
    with torch.no_grad():
        deviation = float((y - module(x)).abs().max())
    assert deviation > 1e-6
    print(f"{t.global_layers[0]}: largest deviation with context='local' {deviation:.3g}")


def test_dask_with_a_torch_module():
    import dask
    import dask.array as da

    torch.manual_seed(0)
    module = UNet().double().eval()
    x = np.random.default_rng(0).standard_normal((1, 1, 92, 76))
    lazy = rfa.tiled(module, da.from_array(x, chunks=(1, 1, 40, 40)), (56, 56))
    with dask.config.set(scheduler="synchronous"):
        got = lazy.compute()
    with torch.no_grad():
        whole = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, whole, rtol=0, atol=1e-10)


def test_halo_is_minimal_for_a_torch_module():
    """An interior window one pixel shorter after its kept span, or starting one alignment
    later, changes a kept unit of the module (random weights)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=2, dilation=2, padding_mode="reflect"),
        nn.ReLU(),
        nn.Conv2d(3, 2, 3, stride=2, padding=1),
    ).double()
    t = rfa.tiling(net, (30, 30))
    image = (120, 120)
    x = torch.randn(1, 1, *image, dtype=torch.float64)
    in_sl, _, keep_sl = next(
        w for w in t.windows(image) if w[0][0].start > 0 and w[0][0].stop < image[0]
    )
    a, b = in_sl[0].start, in_sl[0].stop
    with torch.no_grad():
        base = net(x[:, :, in_sl[0], in_sl[1]])[:, :, keep_sl[0], keep_sl[1]]
        shorter = net(x[:, :, a : b - 1, in_sl[1]])
        later = net(x[:, :, a + t.alignment[0] : b, in_sl[1]])
    rows = keep_sl[0]
    assert shorter.shape[2] < rows.stop or not torch.allclose(
        shorter[:, :, rows, keep_sl[1]], base, rtol=0, atol=1e-12
    )
    shift = t.alignment[0] // 2  # output units per alignment (jump 2)
    assert rows.start - shift < 0 or not torch.allclose(
        later[:, :, rows.start - shift : rows.stop - shift, keep_sl[1]], base, rtol=0, atol=1e-12
    )


def test_numpy_input_to_a_float32_module():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1))
    x = np.random.default_rng(0).standard_normal((1, 1, 50, 41))
    y = rfa.tiled(net, x, 20)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    with torch.no_grad():
        whole = net(torch.from_numpy(x).float()).numpy()
    np.testing.assert_allclose(y, whole, rtol=0, atol=1e-5)


def test_monai_basic_unet():
    """MONAI's BasicUNet (four levels, transposed convolutions, concat) is exact with batch
    norm; its default instance norm reads the whole map and is named."""
    from monai.networks.nets import BasicUNet

    from .real_models import build

    def make(norm):
        return build(
            lambda: BasicUNet(
                spatial_dims=2,
                in_channels=1,
                out_channels=2,
                features=(4, 4, 8, 8, 16, 4),
                norm=norm,
            )
        )

    t = check(make("batch"), (400, 304), (240, 240))
    assert t.alignment == (16, 16)
    instance = rfa.tiling(make("instance").double(), (240, 240))
    assert not instance.exact
    assert "instancenorm) reads the whole map" in instance.global_layers[0]
