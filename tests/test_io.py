"""JSON and TOML spec files."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings

import rfanalysis as rfa

from .strategies import stacks


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_round_trip_keeps_every_field(tmp_path, suffix):
    net = rfa.Network(
        [
            rfa.Conv(
                (7, 5), 2, ((3, 2), (2, 2)), in_channels=3, out_channels=64, bias=False, name="stem"
            ),
            rfa.Pool((3, 3), 2, 1, kind="avg", ceil_mode=True),
            rfa.Residual(
                [rfa.Conv(3, padding=1, padding_mode="reflect")] * 2, [rfa.Conv((1, 1), 1)]
            ),
            rfa.Concat([rfa.Conv(1, groups=2, in_channels=4, out_channels=8)], []),
            rfa.ConvTranspose(4, 2, 1, 1, in_channels=8, out_channels=3),
            rfa.Upsample((2, 1.5)),
            rfa.LocallyConnected(3),
            rfa.Dense(10, bias=False),
        ],
        name="everything",
    )
    path = tmp_path / f"net{suffix}"
    rfa.save(net, path)
    assert rfa.load(path) == net


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_round_trip_keeps_a_products_gates(tmp_path, suffix):
    # x * g(x) with g a 3-tap convolution as the gate (operand 1): in context "local" only x
    # carries the map. Without `gates`, Mul() finds no gate (no operand broadcasts) and
    # counts g's routes there too. In a block, and in a graph nested blocks cannot write (a
    # feeds the product and the sum). By hand, 5 pixels, centre unit:
    #   block: local x = [0 0 1 0 0]; global x + g = [0 1 2 1 0]
    #   graph: a * g(x) + a, local a + a = [0 2 2 2 0]; global a + g + a = [0 3 3 3 0]
    block = rfa.Network([rfa.Parallel([], [rfa.Conv(3, padding=1)], merge=rfa.Mul(gates=(1,)))])
    x = rfa.Input()
    a = rfa.Conv(3, padding=1)(x)
    graph = rfa.Network(rfa.Add()(rfa.Mul(gates=(1,))(a, rfa.Conv(3, padding=1)(x)), a))
    assert not graph.is_tree
    for net, local, full in [
        (block, [0, 0, 1, 0, 0], [0, 1, 2, 1, 0]),
        (graph, [0, 2, 2, 2, 0], [0, 3, 3, 3, 0]),
    ]:
        path = tmp_path / f"net{suffix}"
        rfa.save(net, path)
        back = rfa.load(path)
        assert back == net
        assert rfa.routes(back, (5,), context="local").tolist() == local
        assert rfa.routes(back, (5,)).tolist() == full


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(net=stacks(ndim=2))
def test_round_trip_random_stacks(tmp_path, net):
    for suffix in (".json", ".toml"):
        path = tmp_path / f"n{suffix}"
        rfa.save(net, path)
        assert rfa.load(path) == net


def test_spec_shorthand_and_defaults_left_out(tmp_path):
    path = tmp_path / "n.json"
    path.write_text(json.dumps({"name": "deep", "spec": "conv3p1*4"}))
    net = rfa.load(path)
    assert net.name == "deep" and len(net) == 4
    rfa.save(rfa.parse("conv3"), path)
    assert json.loads(path.read_text())["layers"] == [{"type": "conv", "kernel_size": 3}]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", r"n\.json: not valid JSON"),
        ("[]", r"the top level must be a table/object"),
        ('{"layers": [], "spec": "conv3"}', r"exactly one of `layers`"),
        ('{"layers": [{"type": "convolution"}]}', r"layers\[0\]: `type` must be one of conv,"),
        ('{"layers": [{"type": "conv"}]}', r"layers\[0\] \(conv\): missing key\(s\) kernel_size"),
        (
            '{"layers": [{"type": "conv", "kernel_size": 3, "size": 2}]}',
            r"unknown key\(s\) size; allowed:",
        ),
        (
            '{"layers": [{"type": "conv", "kernel_size": -1}]}',
            r"layers\[0\] \(conv\): `kernel_size` must be >= 1",
        ),
        (
            '{"layers": [{"type": "residual", "body": [{"type": "pool"}]}]}',
            r"layers\[0\]\.body\[0\] \(pool\): missing key",
        ),
        ('{"spec": "conv3,,"}', r"cannot parse spec"),
        ('{"version": 9, "spec": "conv3"}', r"unsupported `version` 9"),
        ('{"layers": "conv3"}', r"layers must be a list"),
    ],
)
def test_bad_json_files(tmp_path, content, message):
    path = tmp_path / "n.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        rfa.load(path)


def test_bad_toml_and_suffix(tmp_path):
    path = tmp_path / "n.toml"
    path.write_text("layers = [ { type = 'conv' ")
    with pytest.raises(ValueError, match=r"n\.toml: not valid TOML"):
        rfa.load(path)
    with pytest.raises(ValueError, match=r"must end in \.json or \.toml"):
        rfa.load(tmp_path / "n.yaml")
    with pytest.raises(FileNotFoundError):
        rfa.load(tmp_path / "missing.json")


def test_written_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        rfa.save(rfa.parse("conv3"), tmp_path / "n.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "n.json").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["n.json"]  # no temporary file left
