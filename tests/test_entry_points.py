"""Every function that takes ``net`` takes the same network in each of its forms: a Network,
a compact spec, a zoo name (with or without ``:trunk``), a spec file (str or Path) and a
``torch.nn.Module`` (traced by from_torch, cached per module and input shape)."""

from __future__ import annotations

import numpy as np
import pytest

import rfanalysis as rfa

SPEC = "conv3p1,conv3s2,maxpool2"


def _same(a, b):
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


CALLS = {
    "routes": lambda net, s: rfa.routes(net, s, exact=True),
    "coverage": lambda net, s: rfa.coverage(net, s, exact=True),
    "output_shape": rfa.output_shape,
    "geometry": lambda net, s: [
        (r.kind, r.kernel, r.stride, r.padding, r.output, r.rf_size, r.jump, r.start)
        for r in rfa.geometry(net, s).rows
    ],
    "receptive_field": lambda net, s: rfa.receptive_field(net, s),
    "blind_spots": lambda net, s: rfa.blind_spots(net, s).zero_description,
    "connections": lambda net, s: [
        (c.n_in, c.n_out, c.out.tolist(), c.tap.tolist(), c.source.tolist())
        for c in rfa.connections(net, s)
    ],
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_spec_file_and_network_forms_agree(call, tmp_path):
    net = rfa.parse(SPEC)
    rfa.save(net, tmp_path / "net.json")
    rfa.save(net, tmp_path / "net.toml")
    f = CALLS[call]
    want = f(net, (11, 11))
    for form in (SPEC, str(tmp_path / "net.json"), tmp_path / "net.toml", list(net.layers)):
        _same(f(form, (11, 11)), want)


@pytest.mark.parametrize("call", sorted(CALLS))
def test_zoo_names_everywhere(call):
    shape = (40, 40)
    f = CALLS[call]
    if call == "connections":  # chains only: a plain VGG trunk
        _same(f("vgg11:trunk", shape), f(rfa.zoo.get("vgg11", trunk=True), shape))
        return
    _same(f("lenet", (28, 28)), f(rfa.zoo.get("lenet"), (28, 28)))
    _same(f("resnet18:trunk", shape), f(rfa.zoo.get("resnet18", trunk=True), shape))


def test_zoo_receptive_fields_by_name():
    # torchvision's ResNet-50 trunk (stride on the 3x3 convolutions), r = 1 + sum (k-1) * jump:
    # stem 1 + 6*1 + 2*2, layer1 3*2*4, layer2 2*4 + 3*2*8, layer3 2*8 + 5*2*16,
    # layer4 2*16 + 2*2*32 = 427; the whole network, with its head, sees everything
    assert rfa.receptive_field("resnet50:trunk").size == (427, 427)
    assert rfa.receptive_field("resnet50").size == ("global", "global")
    assert rfa.zoo.get("resnet50:trunk").spec() == rfa.zoo.get("resnet50", trunk=True).spec()


def test_bad_names_say_what_they_could_be():
    with pytest.raises(ValueError, match=r"did you mean 'resnet50'"):
        rfa.receptive_field("resnet5")
    with pytest.raises(ValueError, match=r"'resnet50:trunk'"):
        rfa.coverage("resnet50:head", (64, 64))
    with pytest.raises(TypeError, match=r"spec string, a zoo name, a spec file, a torch"):
        rfa.coverage(3.5, (9, 9))
    with pytest.raises(FileNotFoundError):
        rfa.coverage("missing.json", (9, 9))


@pytest.mark.torch
@pytest.mark.parametrize("call", sorted(CALLS))
def test_torch_modules_everywhere(call):
    import torch

    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, stride=2), nn.MaxPool2d(2)
    )
    f = CALLS[call]
    _same(f(model, (11, 11)), f(rfa.parse(SPEC), (11, 11)))


@pytest.mark.torch
def test_torch_traces_are_cached_per_module_and_shape():
    import torch

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3), torch.nn.Conv2d(1, 1, 3, stride=2))
    a = rfa.from_torch(model, (12, 12))
    assert rfa.from_torch(model, (12, 12)) is a
    assert rfa.from_torch(model, (14, 14)) is not a
    # the counts through the module equal autograd's gradient support of a ones-weight copy
    for p in model.parameters():
        torch.nn.init.ones_(p)
    x = torch.zeros(1, 1, 12, 12, dtype=torch.float64, requires_grad=True)
    model.double()(x).sum().backward()
    got = rfa.coverage(model, (12, 12))
    np.testing.assert_array_equal(got, x.grad[0, 0].numpy())


@pytest.mark.torch
def test_torch_module_without_a_size_asks_for_one():
    import torch

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3))
    with pytest.raises(TypeError, match=r"torch module \(Sequential\): give `input_shape`"):
        rfa.geometry(model)
    model.pretrained_cfg = {"input_size": (1, 32, 32)}  # as timm models declare themselves
    assert rfa.receptive_field(model).size == (3, 3)
    assert rfa.geometry(model).rows[-1].output == (30, 30)


def test_path_objects_load(tmp_path):
    rfa.save("conv3,conv3", tmp_path / "a.json")
    assert rfa.load(tmp_path / "a.json") == rfa.parse("conv3,conv3")
    assert rfa.receptive_field(tmp_path / "a.json").size == (5, 5)  # 3 + 2


def test_a_fixed_number_of_axes_survives_files_and_is_enforced(tmp_path):
    net = rfa.parse("conv3p1*2").with_ndim(2)
    assert net != rfa.parse("conv3p1*2")  # the same layers, but only for images
    rfa.save(net, tmp_path / "n.json")
    back = rfa.load(tmp_path / "n.json")
    assert back == net and back.ndim == 2
    with pytest.raises(ValueError, match=r"is 2-D but the input 9x9x9 has 3 spatial axes"):
        rfa.coverage(back, (9, 9, 9))
    with pytest.raises(ValueError, match=r"has 3-D layers; it cannot take 2-D inputs"):
        rfa.parse("conv3x3x3").with_ndim(2)
    with pytest.raises(ValueError, match=r"`ndim` must be a positive integer, got 0"):
        net.with_ndim(0)
    (tmp_path / "bad.json").write_text('{"spec": "conv3x3x3", "ndim": 2}')
    with pytest.raises(ValueError, match=r"bad.json: network 'conv3x3x3' has 3-D layers"):
        rfa.load(tmp_path / "bad.json")


@pytest.mark.parametrize(
    "text", ["conv3x3x3", "conv3x3x3s2p1,maxpool2", "up2x2x2,conv3", "blurpool3x3x3"]
)
def test_a_spec_keeps_its_number_of_axes(text):
    # conv3x3x3 is 3-D; written back as "conv3" it would be analysed as a 2-D network
    net = rfa.parse(text)
    assert net.ndim == 3 and rfa.parse(net.spec()).ndim == 3
    shape = (6,) * (net.ndim or 2)
    np.testing.assert_array_equal(rfa.coverage(net.spec(), shape), rfa.coverage(net, shape))


def test_receptive_field_follows_the_networks_own_context():
    net = rfa.parse("conv3p1*2,mul(id|gap)").with_context("local")
    assert rfa.receptive_field(net).size == (5, 5)
    assert rfa.receptive_field(net, context="global").size == ("global", "global")
    assert rfa.receptive_field("conv3p1*2,mul(id|gap)").size == ("global", "global")
    with pytest.raises(ValueError, match=r"`context` must be 'global' or 'local', got 'loc'"):
        rfa.receptive_field(net, context="loc")
