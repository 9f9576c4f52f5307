"""``from_torch``: trace a torch model into a :class:`~rfanalysis.Network`.

The model is traced with ``torch.fx`` and run once on a zero input to learn every tensor's
shape. Each graph node that depends on the input becomes nodes of the network's graph: a
convolution, a pool, nothing for a pointwise operation of one tensor, and an n-ary add,
product or channel concat where several tensors that depend on the input meet.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

from .._graph import Network, Node
from .._ops import Add, Cat, Conv, ConvTranspose, Dense, Layer, Mul, Pool, Upsample
from .._plan import DEFAULT_NDIM, normalise_input_shape, plan
from ._torch import (
    ModuleState,
    module_dtype_device,
    module_in_channels,
    module_ndim,
    require_torch,
)

UNKNOWN = ("error", "identity")

#: modules that keep every position's value at its position (channels may mix)
_IDENTITY_MODULES = (
    "BatchNorm1d BatchNorm2d BatchNorm3d SyncBatchNorm LazyBatchNorm1d LazyBatchNorm2d "
    "LazyBatchNorm3d Identity Dropout Dropout1d Dropout2d Dropout3d AlphaDropout "
    "FeatureAlphaDropout ReLU ReLU6 LeakyReLU PReLU RReLU ELU SELU CELU GELU SiLU Mish "
    "Sigmoid Tanh Hardtanh Hardswish Hardsigmoid Softplus Softsign Tanhshrink Threshold "
    "LogSigmoid Hardshrink Softshrink LocalResponseNorm ChannelShuffle Softmax2d"
).split()
_IDENTITY_FUNCTIONS = (
    "relu relu_ relu6 leaky_relu leaky_relu_ elu elu_ selu celu gelu silu mish hardswish "
    "hardsigmoid hardtanh hardtanh_ softplus softsign tanhshrink threshold logsigmoid sigmoid "
    "tanh dropout dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout batch_norm "
    "local_response_norm"
).split()
_IDENTITY_TORCH = (
    "relu relu_ sigmoid tanh clamp clip abs exp sqrt square neg add mul div sub".split()
)
_IDENTITY_METHODS = (
    "relu relu_ sigmoid sigmoid_ tanh tanh_ clamp clamp_ clip clip_ contiguous clone float "
    "double half to type_as abs abs_ exp sqrt square pow neg mul mul_ div div_ add add_ sub "
    "sub_"
).split()
_RESHAPES = ("flatten", "view", "reshape")
_ARITHMETIC = (
    operator.mul,
    operator.truediv,
    operator.add,
    operator.sub,
    operator.iadd,
    operator.imul,
    operator.neg,
    operator.pos,
)
_ADDS = (operator.add, operator.iadd)
_MULS = (operator.mul, operator.imul)

#: positional parameter names of the torch functions read here
_SIGNATURES = {
    "max_pool": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "avg_pool": ("input", "kernel_size", "stride", "padding", "ceil_mode"),
    "lp_pool": ("input", "norm_type", "kernel_size", "stride", "ceil_mode"),
    "adaptive_avg_pool": ("input", "output_size"),
    "adaptive_max_pool": ("input", "output_size"),
    "interpolate": ("input", "size", "scale_factor", "mode"),
}


def _tuple(value: Any, nd: int) -> tuple:
    if isinstance(value, (tuple, list)):
        return tuple(value) if len(value) == nd else tuple(value) * nd
    return (value,) * nd


class _Unmapped(ValueError):
    pass


class _Converter:
    def __init__(self, torch: Any, gm: Any, name: str, overrides: dict, unknown: str) -> None:
        self.torch = torch
        self.F = torch.nn.functional
        self.gm = gm
        self.name = name
        self.overrides = overrides
        self.unknown = unknown
        from torch.fx.passes.shape_prop import TensorMetadata

        self.meta_type = TensorMetadata
        self.emitted: set[Any] = set()

    # -- graph facts --------------------------------------------------------------------
    def shape(self, node: Any) -> tuple[int, ...]:
        return tuple(node.meta["tensor_meta"].shape)

    def is_tensor(self, node: Any) -> bool:
        return isinstance(node.meta.get("tensor_meta"), self.meta_type)

    def analyse(self) -> None:
        nodes = list(self.gm.graph.nodes)
        inputs = [n for n in nodes if n.op == "placeholder"]
        tensors = [n for n in inputs if self.is_tensor(n)]
        if len(inputs) != 1 or len(tensors) != 1:
            raise ValueError(
                f"from_torch: {self.name} takes {len(inputs)} inputs; only models with one "
                "input tensor can be traced"
            )
        self.input = inputs[0]
        self.order = {n: i for i, n in enumerate(nodes)}
        self.preds: dict[Any, list[Any]] = {}
        live = {self.input}
        for n in nodes:
            if n is self.input:
                continue
            args = [a for a in n.all_input_nodes if a in live]
            if args and self.is_tensor(n):
                live.add(n)
                self.preds[n] = args
        self.preds[self.input] = []
        (out,) = [n for n in nodes if n.op == "output"]
        result = out.args[0]
        if not (hasattr(result, "op") and self.is_tensor(result)):
            raise ValueError(
                f"from_torch: {self.name} returns {type(result).__name__}; only models that "
                "return one tensor can be traced (wrap the model to select one output)"
            )
        if result not in self.preds:
            raise ValueError(f"from_torch: the output of {self.name} does not depend on its input")
        self.output = result

    # -- graph --------------------------------------------------------------------------
    def graph(self) -> list[Node]:
        """Network nodes for every fx node the output depends on, in fx's order."""
        needed = {self.output}
        for n in reversed(list(self.preds)):
            if n in needed:
                needed.update(self.preds[n])
        nodes = [Node(None, (), "input")]
        index = {self.input: 0}
        for n in self.preds:
            if n is self.input or n not in needed:
                continue
            merge = self.merge_kind(n)
            if merge is not None:
                inputs = tuple(index[p] for p in self.merge_inputs(n, merge))
                layer: Layer = {"add": Add, "mul": Mul, "cat": Cat}[merge](name=n.name)
                nodes.append(Node(layer, inputs, str(len(nodes))))
            else:
                src = index[self.preds[n][0]]
                for layer in self.layers(n):
                    nodes.append(Node(layer, (src,), str(len(nodes))))
                    src = len(nodes) - 1
                index[n] = src
                continue
            index[n] = len(nodes) - 1
        if index[self.output] != len(nodes) - 1:  # the output is an identity of a node
            nodes.append(Node(Add(name=self.output.name), (index[self.output],), str(len(nodes))))
        return nodes

    def merge_kind(self, node: Any) -> str | None:
        preds = self.preds[node]
        if len(preds) < 2:
            return None
        target = node.target
        if node.op == "call_function" and (target in _ADDS or target is self.torch.add):
            return "add"
        if node.op == "call_method" and target in ("add", "add_"):
            return "add"
        if node.op == "call_function" and (target in _MULS or target is self.torch.mul):
            return "mul"
        if node.op == "call_method" and target in ("mul", "mul_"):
            return "mul"
        if node.op == "call_function" and target in (
            self.torch.cat,
            getattr(self.torch, "concat", None),
            getattr(self.torch, "concatenate", None),
        ):
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
            nd = len(self.shape(node))
            if not isinstance(dim, int) or dim % nd != 1:
                raise ValueError(
                    f"from_torch: node {node.name!r} concatenates along axis {dim} of a "
                    f"{nd}-D tensor; only channel concatenation (dim=1) is supported"
                )
            return "cat"
        raise ValueError(
            f"from_torch: node {node.name!r} ({self.describe(node)}) combines "
            f"{len(preds)} tensors that depend on the input; only adds, products and channel "
            "concatenation (torch.cat(..., dim=1)) can be expressed"
        )

    def merge_inputs(self, node: Any, merge: str) -> list[Any]:
        args = node.args if merge != "cat" else (node.args or (node.kwargs["tensors"],))[0]
        return [a for a in args if a in self.preds]  # constants are not operands

    # -- single nodes -------------------------------------------------------------------
    def describe(self, node: Any) -> str:
        if node.op == "call_module":
            return type(self.gm.get_submodule(node.target)).__name__
        if node.op == "call_method":
            return f"Tensor.{node.target}"
        target = node.target
        module = getattr(target, "__module__", None) or ""
        return f"{module}.{getattr(target, '__name__', target)}".lstrip(".")

    def layers(self, node: Any) -> list[Layer]:
        override = self.override(node)
        if override is not _NONE:
            return override  # type: ignore[no-any-return]
        try:
            if node.op == "call_module":
                return self.module_layers(node, self.gm.get_submodule(node.target))
            if node.op == "call_function":
                return self.function_layers(node)
            if node.op == "call_method":
                return self.method_layers(node)
        except _Unmapped:
            pass
        if self.unknown == "identity":
            return []
        raise ValueError(self.unmapped_message(node))

    def unmapped_message(self, node: Any) -> str:
        if node.op == "call_module":
            kind = type(self.gm.get_submodule(node.target)).__name__
            return (
                f"from_torch: no mapping for module {node.target!r} ({kind}); map it with "
                f"overrides={{{kind}: lambda m: rfa.Conv(...)}} or "
                f"overrides={{{node.target!r}: ...}} (None for a layer that keeps every "
                "position in place), or pass unknown='identity'"
            )
        what = self.describe(node)
        key = repr(node.target) if node.op == "call_method" else what
        owner = _owner(node)
        where, how = "", f"map it with overrides={{{key}: ...}}"
        if owner is not None:
            path, cls = owner
            where = f" inside module {path!r} ({cls.__name__})"
            how = (
                f"map the module with overrides={{{cls.__name__}: ...}} or the operation "
                f"with overrides={{{key}: ...}}"
            )
        return (
            f"from_torch: no mapping for {what} at node {node.name!r}{where}; {how} "
            "(a layer, a list of layers, or None for identity), or pass unknown='identity'"
        )

    def override(self, node: Any) -> Any:
        module = self.gm.get_submodule(node.target) if node.op == "call_module" else None
        for key, value in self.overrides.items():
            if isinstance(key, str):
                hit = key == node.target
            elif isinstance(key, type):
                hit = module is not None and isinstance(module, key)
            else:
                hit = node.op == "call_function" and key is node.target
            if hit:
                if callable(value) and not isinstance(value, (Layer, Network)):
                    value = value(module if module is not None else node)
                return _as_layers(value, key)
        return _NONE

    def module_layers(self, node: Any, m: Any) -> list[Layer]:
        nn = self.torch.nn
        kind = type(m).__name__
        name = node.target
        in_shape = self.shape(node.args[0])
        nd = len(in_shape) - 2
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return [
                Conv(
                    tuple(m.kernel_size),
                    tuple(m.stride),
                    m.padding if isinstance(m.padding, str) else tuple(m.padding),
                    tuple(m.dilation),
                    m.padding_mode,
                    in_channels=m.in_channels,
                    out_channels=m.out_channels,
                    groups=m.groups,
                    bias=m.bias is not None,
                    name=name,
                )
            ]
        if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            return [
                ConvTranspose(
                    tuple(m.kernel_size),
                    tuple(m.stride),
                    tuple(m.padding),
                    tuple(m.output_padding),
                    tuple(m.dilation),
                    in_channels=m.in_channels,
                    out_channels=m.out_channels,
                    groups=m.groups,
                    bias=m.bias is not None,
                    name=name,
                )
            ]
        if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
            if m.return_indices:
                raise _Unmapped
            return [
                self.pool(
                    "max", nd, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, name
                )
            ]
        if isinstance(m, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
            return [self.pool("avg", nd, m.kernel_size, m.stride, m.padding, 1, m.ceil_mode, name)]
        if isinstance(m, (nn.LPPool1d, nn.LPPool2d, nn.LPPool3d)):
            return [
                self.pool(
                    "lp", nd, m.kernel_size, m.stride, 0, 1, m.ceil_mode, name, float(m.norm_type)
                )
            ]
        if kind.startswith(("AdaptiveAvgPool", "AdaptiveMaxPool")):
            return [self.adaptive("avg" if "Avg" in kind else "max", in_shape, m.output_size, name)]
        if isinstance(m, nn.Upsample):
            return self.upsample(node, in_shape, m.size, m.scale_factor, m.mode, name)
        if isinstance(m, nn.Linear):
            self.check_flat(node, in_shape, "nn.Linear")
            return [Dense(m.out_features, bias=m.bias is not None, name=name)]
        if isinstance(m, nn.Flatten):
            return self.reshape(node, in_shape)
        if kind in _IDENTITY_MODULES:
            return []
        raise _Unmapped

    def function_layers(self, node: Any) -> list[Layer]:
        target, F, torch = node.target, self.F, self.torch
        in_shape = self.shape(self.preds[node][0])
        nd = len(in_shape) - 2
        if target in _ARITHMETIC or target in (torch.flatten,):
            return self.reshape(node, in_shape) if target is torch.flatten else []
        for name in _IDENTITY_FUNCTIONS:
            if target is getattr(F, name, None):
                return []
        for name in _IDENTITY_TORCH:
            if target is getattr(torch, name, None):
                return []
        for base, params in _SIGNATURES.items():
            if not any(target is getattr(F, f"{base}{d}d", None) for d in (1, 2, 3)) and not (
                base == "interpolate" and target is F.interpolate
            ):
                continue
            a = dict(zip(params, node.args)) | dict(node.kwargs)
            if base == "interpolate":
                return self.upsample(
                    node,
                    in_shape,
                    a.get("size"),
                    a.get("scale_factor"),
                    a.get("mode", "nearest"),
                    node.name,
                )
            if base.startswith("adaptive"):
                kind = "avg" if "avg" in base else "max"
                return [self.adaptive(kind, in_shape, a["output_size"], node.name)]
            if base == "lp_pool":
                return [
                    self.pool(
                        "lp",
                        nd,
                        a["kernel_size"],
                        a.get("stride"),
                        0,
                        1,
                        a.get("ceil_mode", False),
                        node.name,
                        float(a["norm_type"]),
                    )
                ]
            if a.get("return_indices"):
                raise _Unmapped
            return [
                self.pool(
                    base.split("_")[0],
                    nd,
                    a["kernel_size"],
                    a.get("stride"),
                    a.get("padding", 0),
                    a.get("dilation", 1),
                    a.get("ceil_mode", False),
                    node.name,
                )
            ]
        raise _Unmapped

    def method_layers(self, node: Any) -> list[Layer]:
        in_shape = self.shape(self.preds[node][0])
        if node.target in _RESHAPES:
            return self.reshape(node, in_shape)
        if node.target in _IDENTITY_METHODS:
            return []
        raise _Unmapped

    # -- builders -----------------------------------------------------------------------
    def pool(self, kind, nd, k, s, p, d, ceil_mode, name, norm_type=2.0) -> Pool:
        k = _tuple(k, nd)
        s = k if s is None or (isinstance(s, (tuple, list)) and not s) else _tuple(s, nd)
        return Pool(
            k,
            s,
            _tuple(p, nd),
            _tuple(d, nd),
            kind=kind,
            ceil_mode=bool(ceil_mode),
            norm_type=norm_type,
            name=name,
        )

    def adaptive(self, kind: str, in_shape: tuple, output_size: Any, name: str) -> Pool:
        spatial = in_shape[2:]
        out = [n if m is None else m for n, m in zip(spatial, _tuple(output_size, len(spatial)))]
        bad = [(n, m) for n, m in zip(spatial, out) if n % m]
        if bad:
            n, m = bad[0]
            raise ValueError(
                f"from_torch: adaptive pool {name!r} maps {n} units to {m}: its windows differ "
                "in size, so it is not a fixed pool for this input_shape (choose an input size "
                "divisible by the output size, or map it with overrides=)"
            )
        k = tuple(n // m for n, m in zip(spatial, out))
        return Pool(k, k, kind=kind, name=name)

    def upsample(self, node, in_shape, size, scale, mode, name) -> list[Layer]:
        if mode != "nearest":
            raise ValueError(
                f"from_torch: {name!r} interpolates with mode={mode!r}; only 'nearest' has "
                "the routes of Upsample (map it with overrides=)"
            )
        spatial = in_shape[2:]
        if scale is None:
            sizes = _tuple(size, len(spatial))
            if any(m % n for m, n in zip(sizes, spatial)):
                raise ValueError(
                    f"from_torch: {name!r} resizes {spatial} to {tuple(sizes)}; only integer "
                    "factors can be expressed as Upsample"
                )
            scale = tuple(m // n for m, n in zip(sizes, spatial))
        return [Upsample(_tuple(scale, len(spatial)), name=name)]

    def reshape(self, node: Any, in_shape: tuple) -> list[Layer]:
        out = self.shape(node)
        if out == in_shape or (len(out) == 2 and out[1] == math.prod(in_shape[1:])):
            return []  # a no-op, or the flatten before a dense layer
        raise ValueError(
            f"from_torch: node {node.name!r} reshapes {in_shape} to {out}; only the flatten "
            "before a Linear layer keeps the routes (map it with overrides=)"
        )

    def check_flat(self, node: Any, in_shape: tuple, what: str) -> None:
        if len(in_shape) != 2:
            raise ValueError(
                f"from_torch: {what} {node.target!r} is applied to a {len(in_shape)}-D tensor "
                f"{in_shape}; it acts on the last axis only. rfanalysis models Linear after a "
                "flatten (map it with overrides=)"
            )


_NONE = object()


def _as_layers(value: Any, key: Any) -> list[Layer]:
    if value is None:
        return []
    if isinstance(value, Layer):
        return [value]
    if isinstance(value, Network):
        return list(value.layers)
    if isinstance(value, Sequence) and not isinstance(value, str):
        if all(isinstance(v, Layer) for v in value):
            return list(value)
    raise TypeError(
        f"`overrides` value for {key!r} must be a layer, a list of layers, a Network, None, "
        f"or a callable returning one; got {value!r}"
    )


def _check_overrides(overrides: Any) -> dict:
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise TypeError(
            f"`overrides` must be a dict mapping module types, qualified module names or "
            f"functions to layers; got {type(overrides).__name__}"
        )
    for key in overrides:
        if not (isinstance(key, (str, type)) or callable(key)):
            raise TypeError(
                f"`overrides` keys must be module types, qualified module names or functions; "
                f"got {key!r}"
            )
    return overrides


def from_torch(
    module: Any,
    input_shape: Any,
    *,
    in_channels: int | None = None,
    overrides: dict[Any, Any] | None = None,
    unknown: str = "error",
) -> Network:
    """Trace a torch model into a :class:`~rfanalysis.Network`.

    Parameters
    ----------
    module : torch.nn.Module
        A model taking one tensor ``(batch, C, *spatial)`` and returning one tensor.
    input_shape : int or tuple of int
        Spatial input size (an int: every axis; the axes are those of the model's first
        convolution or pool, else 2). Shapes decide adaptive pools and interpolation sizes.
    in_channels : int, optional
        Input channels; default: those of the model's first convolution, else 1.
    overrides : dict, optional
        How to map modules or functions that have no built-in mapping (or to replace one):
        keys are module types (``MyBlock``), qualified module names (``"features.3"``),
        functions (``torch.roll``) or Tensor method names (``"unflatten"``); values are a
        layer, a list of layers, a Network, ``None`` (the operation keeps every position in
        place), or a callable taking the module (or the fx node, for functions and methods)
        and returning one of these. Overridden modules are not traced into.
    unknown : {"error", "identity"}
        What to do with an operation that has no mapping: raise (naming it), or treat it as
        the identity.

    Returns
    -------
    Network
        Layers named after the modules (or graph nodes) they come from.

    Notes
    -----
    Mapped: ``nn.Conv1d/2d/3d`` (padding, padding_mode, dilation, groups, channels, bias),
    ``ConvTranspose``, ``MaxPool`` / ``AvgPool`` / ``LPPool`` (ceil_mode; also their
    ``torch.nn.functional`` forms), ``AdaptiveAvgPool`` / ``AdaptiveMaxPool`` when the input
    size is a multiple of the output size, ``Upsample`` / ``F.interpolate`` in ``nearest``
    mode, ``Linear`` after a flatten (``nn.Flatten``, ``torch.flatten``, ``view``,
    ``reshape``), and as identity BatchNorm, pointwise activations, dropout and arithmetic
    with constants. ``a + b`` (``torch.add``, ``+=``) of values that depend on the input
    becomes :class:`~rfanalysis.Add`,
    ``torch.cat(..., dim=1)`` becomes :class:`~rfanalysis.Cat` and a product of two such
    values :class:`~rfanalysis.Mul`. The traced output shape is checked against the
    Network's.

    Examples
    --------
    >>> import torch.nn as nn
    >>> import rfanalysis as rfa
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
    ...                       nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 16 * 16, 10))
    >>> rfa.from_torch(model, 32).spec()
    'conv3p1,maxpool2,fc10'
    """
    torch = require_torch("from_torch")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"`module` must be a torch.nn.Module, got {type(module).__name__}")
    if unknown not in UNKNOWN:
        raise ValueError(f"`unknown` must be 'error' or 'identity', got {unknown!r}")
    mapping = _check_overrides(overrides)
    if in_channels is not None and (
        isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1
    ):
        raise ValueError(f"`in_channels` must be a positive integer, got {in_channels!r}")
    shape = normalise_input_shape(input_shape, module_ndim(module) or DEFAULT_NDIM)
    cin = in_channels or module_in_channels(module)
    name = type(module).__name__
    gm = _trace(torch, module, mapping, name)
    _propagate(torch, module, gm, (1, cin, *shape), name)
    conv = _Converter(torch, gm, name, mapping, unknown)
    conv.analyse()
    nodes = conv.graph()
    if len(nodes) < 2:
        raise ValueError(
            f"from_torch: {name} has no layer that changes routes (it is the identity)"
        )
    net = Network.from_nodes(nodes, name=name)
    expected = conv.shape(conv.output)
    expected = expected[2:] if len(expected) > 2 else expected[1:]
    got = plan(net, shape).output_shape
    if got != tuple(expected):
        raise ValueError(
            f"from_torch: the traced Network gives output {got} but {name} gives "
            f"{tuple(expected)} for input {shape}; some operation changes shapes in a way the "
            "mapping does not capture (map it with overrides=)"
        )
    return net


def _trace(torch: Any, module: Any, overrides: dict, name: str) -> Any:
    fx = torch.fx
    names = {k for k in overrides if isinstance(k, str)}
    types = tuple(k for k in overrides if isinstance(k, type))

    class Tracer(fx.Tracer):  # type: ignore[misc, name-defined]
        def is_leaf_module(self, m: Any, qualname: str) -> bool:
            if qualname in names or (types and isinstance(m, types)):
                return True
            return bool(super().is_leaf_module(m, qualname))

    tracer = Tracer()
    if tracer.is_leaf_module(module, ""):  # a single layer: trace it as a call, not inside
        module = torch.nn.Sequential(module)
    try:
        graph = tracer.trace(module)
    except Exception as exc:  # torch.fx raises many kinds
        raise ValueError(
            f"from_torch: torch.fx cannot trace {name} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); map the untraceable submodule "
            "with overrides={ItsType: ...}, which stops tracing at it"
        ) from exc
    return fx.GraphModule(tracer.root, graph)


def _propagate(torch: Any, module: Any, gm: Any, shape: tuple[int, ...], name: str) -> None:
    from torch.fx.passes.shape_prop import ShapeProp

    dtype, device = module_dtype_device(module)
    state = ModuleState(module)
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(shape, dtype=dtype, device=device))
    except Exception as exc:
        raise ValueError(
            f"from_torch: running {name} on an input of shape {shape} failed "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); check "
            "`input_shape` and `in_channels`"
        ) from exc
    finally:
        state.restore()


def _owner(node: Any) -> tuple[str, type] | None:
    """The innermost module a traced operation belongs to. fx records no module for an
    attribute access such as ``.real``; it belongs where the function call it reads from
    does (a module's output, read outside the module, does not make it the module's)."""
    stack = node.meta.get("nn_module_stack")
    if not stack and node.op == "call_function" and node.target is getattr:
        source = node.all_input_nodes[0] if node.all_input_nodes else None
        if source is not None and source.op in ("call_function", "call_method"):
            stack = source.meta.get("nn_module_stack")
    if not stack:
        return None
    path, cls = list(stack.values())[-1]
    return path, cls
