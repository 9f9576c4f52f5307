"""Spec files for graphs that nested blocks cannot write: the ``nodes`` schema, round trips
in JSON and TOML, and one clear error per bad file that names the node at fault."""

from __future__ import annotations

import json
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings

import rfanalysis as rfa

from .strategies import graphs


def _named_graph():
    """A DenseNet-like block with a gate: layer names (one of them twice, so that ids are
    needed), n-ary add / concat / product, a broadcast operand, per-axis parameters and
    padding modes; ``a`` feeds three merges of different depths."""
    x = rfa.Input()
    a = rfa.Conv((3, 5), padding=(1, 2), padding_mode="reflect", out_channels=8, name="a")(x)
    b = rfa.Conv(3, padding=1, name="twin")(a)
    c = rfa.Conv(3, padding="same", dilation=2, padding_mode="circular", name="twin")(
        rfa.Cat()(a, b)
    )
    gate = rfa.Pool((1, 4), kind="avg", name="gate")(c)  # 1 unit along the last axis
    d = rfa.Mul(name="gated")(c, gate)
    s = rfa.Add(name="sum")(x, a, d)
    return rfa.Network(rfa.Cat()(a, b, s, rfa.ConvTranspose(1)(s)), name="block")


def test_graph_file_schema_by_hand(tmp_path):
    net = _named_graph()
    assert not net.is_tree
    rfa.save(net, tmp_path / "g.json")
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["name"] == "block" and "layers" not in data
    # a node is known by its layer's name where that is unique, else by n<index>; inputs
    # are listed where a node does not just read the node before it
    assert data["nodes"] == [
        {
            "type": "conv",
            "kernel_size": [3, 5],
            "padding": [1, 2],
            "padding_mode": "reflect",
            "out_channels": 8,
            "name": "a",
        },
        {"id": "n2", "type": "conv", "kernel_size": 3, "padding": 1, "name": "twin"},
        {"id": "n3", "type": "cat", "inputs": ["a", "n2"]},
        {
            "id": "n4",
            "type": "conv",
            "kernel_size": 3,
            "padding": "same",
            "dilation": 2,
            "padding_mode": "circular",
            "name": "twin",
        },
        {"type": "pool", "kernel_size": [1, 4], "kind": "avg", "name": "gate"},
        {"type": "mul", "name": "gated", "inputs": ["n4", "gate"]},
        {"type": "add", "name": "sum", "inputs": ["input", "a", "gated"]},
        {"id": "n8", "type": "tconv", "kernel_size": 1},
        {"id": "n9", "type": "cat", "inputs": ["a", "n2", "sum", "n8"]},
    ]


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_graph_round_trip(tmp_path, suffix):
    net = _named_graph()
    path = tmp_path / f"g{suffix}"
    rfa.save(net, path)
    back = rfa.load(path)
    assert back == net
    assert [n.layer.name for n in back.nodes[1:]] == [n.layer.name for n in net.nodes[1:]]
    assert not back.is_tree


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(graph=graphs(ndim=2, max_ops=7))
def test_random_graphs_round_trip(tmp_path, graph):
    # 60 random graphs, each in both formats; about half of them are not trees
    net = graph[0]
    for suffix, read in ((".json", json.loads), (".toml", tomllib.loads)):
        path = tmp_path / f"g{suffix}"
        rfa.save(net, path)
        back = rfa.load(path)
        # a graph built node by node is written node by node, even where nested blocks could
        # write it, and loads back equal: the same nodes, names and inputs
        assert "nodes" in read(path.read_text())
        assert back == net
    # one built from blocks is written as blocks
    blocks = rfa.parse("conv3,res(conv3p1|conv1),cat(conv1|id)")
    rfa.save(blocks, tmp_path / "b.json")
    assert "layers" in json.loads((tmp_path / "b.json").read_text())
    assert rfa.load(tmp_path / "b.json") == blocks


def test_graph_file_in_any_order_with_an_output(tmp_path):
    # nodes may come in any order; `output` names the output node
    path = tmp_path / "g.toml"
    path.write_text(
        "output = 'sum'\n"
        "nodes = [\n"
        "  { id = 'sum', type = 'add', inputs = ['input', 'deep', 'mid'] },\n"
        "  { id = 'deep', type = 'conv', kernel_size = 3, padding = 1, inputs = ['mid'] },\n"
        "  { id = 'mid', type = 'conv', kernel_size = 3, padding = 1, inputs = ['input'] },\n"
        "]\n"
    )
    net = rfa.load(path)
    assert [n.inputs for n in net.nodes] == [(), (0,), (1,), (0, 2, 1)]
    # y = x + m + conv(m), m = conv3p1(x), on 5 pixels: unit 2 gets 1 + [0 1 1 1 0] +
    # [1 2 3 2 1] (conv3p1 twice)
    assert rfa.routes(net, (5,), exact=True).tolist() == [1, 3, 5, 3, 1]


def _nodes(*nodes, **top):
    return json.dumps({"nodes": list(nodes), **top})


CONV = {"type": "conv", "kernel_size": 3, "padding": 1}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            _nodes(
                {"id": "a", **CONV, "inputs": ["b"]},
                {"id": "b", **CONV, "inputs": ["a"]},
                {"id": "out", "type": "add", "inputs": ["input", "a"]},
            ),
            r"g\.json: nodes: the nodes form a cycle \(a -> b -> a\)",
        ),
        (
            _nodes({"id": "s", "type": "add", "inputs": ["input", "s"]}),
            r"nodes: the nodes form a cycle \(s -> s\)",
        ),
        (
            _nodes({"id": "stem", **CONV}, {"id": "out", "type": "add", "inputs": ["stme"]}),
            r"nodes\[1\] 'out': input 'stme' is not a node; did you mean 'stem'\?",
        ),
        (
            _nodes({"id": "side", **CONV}, {"id": "main", **CONV, "inputs": ["input"]}),
            r"nodes: node 'side' does not lead to the output 'main'",
        ),
        (
            _nodes({"id": "a", **CONV}, {"id": "a", **CONV}),
            r"nodes\[1\]: two nodes are known as 'a' \(give each an `id`\)",
        ),
        (
            _nodes({**CONV, "name": "a"}, {**CONV, "name": "a"}),
            r"nodes\[1\]: two nodes are known as 'a'",
        ),
        (
            _nodes({"id": "a", **CONV, "type": "convolution"}),
            r"nodes\[0\]: `type` must be one of conv, .*; got 'convolution'",
        ),
        (
            _nodes({"id": "a", **CONV}, {"id": "b", "type": "sum", "inputs": ["input", "a"]}),
            r"nodes\[1\]: `type` must be one of .*; got 'sum'",
        ),
        (
            _nodes({"id": "a", **CONV, "inputs": "input", "size": 2}),
            r"nodes\[0\] 'a' \(conv\): unknown key\(s\) size; allowed: .* id, .* inputs,",
        ),
        (
            _nodes({"id": "a", **CONV, "inputs": 3}),
            r"nodes\[0\] 'a': `inputs` must be a list of node names, got 3",
        ),
        (_nodes({"id": 3, **CONV}), r"nodes\[0\]: `id` must be a non-empty string"),
        (_nodes({"id": "input", **CONV}), r"nodes\[0\]: `id` must be .* other than 'input'"),
        (_nodes(CONV, output="last"), r"nodes: `output` 'last' is not a node"),
        (
            _nodes({"id": "r", "type": "res", "body": [CONV]}),
            r"nodes\[0\] 'r': a graph writes a residual add as an 'add' node",
        ),
        (
            _nodes({"id": "a", **CONV}, {"id": "b", **CONV, "inputs": ["a", "input"]}),
            r"nodes\[1\] 'b': conv3p1 takes 1 input\(s\), got 2",
        ),
        (
            _nodes({"id": "sum", "type": "add", "inputs": []}),
            r"nodes\[0\] 'sum': add takes at least 1 input\(s\), got 0",
        ),
        ('{"nodes": []}', r"nodes must be a non-empty list of nodes"),
    ],
)
def test_bad_graph_files(tmp_path, content, message):
    path = tmp_path / "g.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        rfa.load(path)
