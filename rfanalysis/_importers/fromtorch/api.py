"""``from_torch``: trace a torch model into a network graph, checked against the model.

The model is traced with ``torch.fx`` (a submodule that fx cannot trace, for example one
with data-dependent control flow, is retried as a leaf) and run once while :mod:`._convert`
turns every operation into nodes. That run is on shapes (meta tensors: no arithmetic, so a
large model converts in a fraction of a second); where the conversion needs values computed
from the input, or fx cannot trace the model, the model runs on a random input instead (and
a model fx cannot trace is recorded as it runs). Then, unless ``verify=False``, the graph is
checked against the module itself: the trace must compute the module's own output on a
random input, and the support of one output unit's autograd gradient, with the module's own
weights, must lie inside the support of its routes. Where it does not, the error names the
first traced tensor (walking back from the output) where autograd reaches units that no
route does.
"""

from __future__ import annotations

import weakref
from typing import Any

from ..._graph import Network, Node, check_context
from ..._plan import DEFAULT_NDIM, normalise_input_shape, plan
from ..._suggest import did_you_mean
from .converter import Converter
from .messages import check_overrides
from .modules import (
    ModuleState,
    module_dtype_device,
    module_in_channels,
    module_ndim,
    require_torch,
)
from .tracing import _convert_on_shapes, _convert_on_values, _Found
from .units import Value, varying_axes
from .verify import _verify, _verify_two_sided

UNKNOWN = ("error", "identity")

_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple, Network]] = weakref.WeakKeyDictionary()


def from_torch(
    module: Any,
    input_shape: Any,
    *,
    output: str | None = None,
    context: str = "global",
    verify: bool | str = True,
    in_channels: int | None = None,
    overrides: dict[Any, Any] | None = None,
    unknown: str = "error",
) -> Network:
    """Trace a torch model into a :class:`~rfanalysis.Network` graph.

    Parameters
    ----------
    module : torch.nn.Module
        A model taking one tensor ``(batch, C, *spatial)``.
    input_shape : int or tuple of int
        Spatial input size (an int: every axis; the axes are those of the model's first
        convolution or pool, else 2). The graph is traced at this size: adaptive pools,
        interpolation sizes, token grids and attention windows are fixed by it.
    output : str, optional
        A submodule's qualified name (``"layer4"``, ``"features.12"``, ``"stages.2"``) or a
        traced node's name whose output map is analysed instead of the model's output; for a
        model that returns a dict (torchvision's segmentation models), the key (``"out"``).
    context : {"global", "local"}
        The context the returned network's routes, coverage and geometry use by default
        (each call may still choose).
    verify : bool or "two-sided"
        ``True``: check the graph against the module itself (one forward pass of the module
        and one forward and backward pass of its trace, in the module's dtype) and raise
        where they part: the trace must compute the module's output, and every input pixel
        the centre unit's gradient reaches must have a route (a route the graph misses).
        ``"two-sided"``: that, and the converse for the centre unit, the corners and the
        middle of the first edge: every pixel their routes reach must be reached by their
        gradient for one of three random inputs (a route the graph invents: padding read as
        a pixel, a window wider than the module's); three more forward passes and a
        backward pass per unit. Activations that cut gradients everywhere on some route (a
        ReLU dead for every input tried, a max pool over few channels) can make it raise
        for a right graph; the message says where. ``False``: no check; the model does no
        arithmetic (its trace runs on shapes) and its trace is taken to compute what the
        module does.
    in_channels : int, optional
        Input channels; default: those of the model's first convolution, else 1.
    overrides : dict, optional
        How to map modules or functions without a built-in mapping (or to replace one):
        keys are module types (``MyBlock``), qualified module names (``"features.3"``),
        functions (``torch.roll``) or Tensor method names (``"unflatten"``); values are a
        layer, a list of layers, a Network, ``None`` (the operation keeps every position in
        place), or a callable taking the module (or the fx node, for functions and methods)
        and returning one of these. Overridden modules are not traced into.
    unknown : {"error", "identity"}
        What to do with an operation that has no mapping: raise (naming it, its module and
        the override that would map it), or treat it as keeping positions in place.

    Returns
    -------
    Network
        Nodes named after the modules (or traced nodes) they come from. Traces are cached
        per module and arguments.

    Raises
    ------
    ValueError
        For an operation without a mapping, a model fx cannot trace, or a graph whose
        routes miss units that the model's gradient reaches (one line naming where).
    rfanalysis.ConversionError
        With ``verify="two-sided"``, for a graph whose routes reach pixels that no gradient
        does (one line naming the unit and where they part).

    Notes
    -----
    Every operation of DESIGN section 9 is mapped: convolutions, pools (adaptive too),
    interpolation in every mode, dense layers; gates and every product of input-dependent
    tensors; global means, sums and maxima; InstanceNorm, GroupNorm and LayerNorm over space;
    layout operations (permute, transpose, view, reshape, flatten, unflatten, chunk, split,
    slicing, pad, roll, repeat, expand, pixel shuffle, channel shuffle, concatenation);
    attention (``nn.MultiheadAttention``, ``scaled_dot_product_attention``, written-out
    ``softmax(q @ k.T) @ v``, torchvision's shifted windows, with their masks); class and
    register tokens and position embeddings (constants); eval-mode dropout, stochastic depth
    and drop path (identities). A layer applied over channels after a permute is the identity
    of space. Where elements move, the graph holds the relation it traced, fixed to
    ``input_shape``.

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
    check_context(context)
    if not (isinstance(verify, bool) or verify == "two-sided"):
        kind = ValueError if isinstance(verify, str) else TypeError
        raise kind(f"`verify` must be True, False or 'two-sided', got {verify!r}")
    if output is not None and not isinstance(output, str):
        raise TypeError(f"`output` must be a module or node name, got {output!r}")
    mapping = check_overrides(overrides)
    if in_channels is not None and (
        isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1
    ):
        raise ValueError(f"`in_channels` must be a positive integer, got {in_channels!r}")
    shape = normalise_input_shape(input_shape, module_ndim(module) or DEFAULT_NDIM)
    cin = in_channels or _declared_channels(module) or module_in_channels(module)
    key = (shape, cin, output, context, verify, unknown, tuple(map(id, mapping)))
    cached = _CACHE.get(module, {}).get(key) if not mapping else None
    if cached is not None:
        return cached
    net = _from_torch(torch, module, shape, cin, output, context, verify, mapping, unknown)
    if not mapping:
        _CACHE.setdefault(module, {})[key] = net
    return net


def _from_torch(torch, module, shape, cin, output, context, verify, mapping, unknown) -> Network:
    name = type(module).__name__
    found = _traced(torch, module, shape, cin, output, context, mapping, unknown, name, True)
    if verify and not _verify(torch, module, found, shape, cin, name):
        # the fx trace, converted on shapes, computes another output than the module: convert
        # on values, which records the module as it runs instead
        found = _traced(torch, module, shape, cin, output, context, mapping, unknown, name, False)
        _verify(torch, module, found, shape, cin, name)
    if verify == "two-sided":
        _verify_two_sided(torch, module, found, shape, cin, name)
    return found.net


def _traced(torch, module, shape, cin, output, context, mapping, unknown, name, shapes) -> _Found:
    """Convert the model, on shapes first (``shapes``: meta tensors, where the conversion
    needs no values computed from the input), else running it on a random input."""
    state = ModuleState(module)  # eval mode before tracing: fx records the eval branches
    try:
        dtype, device = module_dtype_device(module)
        converted = _convert_on_shapes(torch, module, shape, cin, dtype, mapping, unknown,
                                       name) if shapes else None  # fmt: skip
        if converted is None:
            converted = _convert_on_values(torch, module, shape, cin, dtype, device, mapping,
                                           unknown, output, name)  # fmt: skip
        program, graph, conv, run = converted
    finally:
        state.restore()
    value, real, fx_node = _selected_output(torch, program, run, output, name)
    out_node, axes = _output_node(torch, conv, value, real, name)
    nodes, keep = _pruned(graph.nodes, out_node)
    if len(nodes) < 2:
        raise ValueError(
            f"from_torch: {name} has no layer that changes routes (it is the identity)"
        )
    net = Network.from_nodes(
        nodes, name=name if output is None else f"{name}:{output}", ndim=len(shape)
    )
    if context == "local":
        net = net.with_context("local")
    grid = tuple(real.shape[a] for a in axes) or (1,)
    got = plan(net, shape).output_shape
    if got != grid:  # pragma: no cover - the converter tracks grids as the planner does
        raise ValueError(
            f"from_torch: the traced network gives output {got} but {name} gives {grid} for "
            f"input {shape}; please report this"
        )
    return _Found(program, run, run.shapes_only, net, keep, value, fx_node, axes)


def _declared_channels(module: Any) -> int | None:
    """Input channels a model declares of itself (timm's ``pretrained_cfg["input_size"]``),
    where its first convolution would mislead (a space-to-depth stem reads more channels)."""
    cfg = getattr(module, "pretrained_cfg", None)
    if isinstance(cfg, dict) and isinstance(cfg.get("input_size"), (tuple, list)):
        size = cfg["input_size"]
        return int(size[0]) if size and isinstance(size[0], int) else None
    return None


# --------------------------------------------------------------------------- the output
def _selected_output(torch: Any, gm: Any, run: Any, output: str | None, name: str):
    """The Value, real tensor and fx node analysed: the model's output, or the output of
    the submodule or node named ``output``."""
    nodes = list(gm.graph.nodes)
    (out,) = [n for n in nodes if n.op == "output"]
    returned = out.args[0]
    if isinstance(returned, dict) and output in returned:
        src = returned[output]  # a key of the dict the model returns ("out")
    elif output is None:
        src = returned
        if isinstance(returned, dict):
            raise ValueError(
                f"from_torch: {name} returns a dict ({', '.join(map(repr, returned))}); pass "
                "output= with the key to analyse"
            )
        if not hasattr(src, "op"):
            raise ValueError(
                f"from_torch: {name} returns {type(src).__name__}; only models that return one "
                "tensor can be traced (pass output= to pick a submodule's map)"
            )
    else:
        src = _named_node(nodes, output, name)
    value = run.vals.get(src)
    real = run.env.get(src)
    if not isinstance(value, Value) or not isinstance(real, torch.Tensor):
        raise ValueError(f"from_torch: the output of {name} does not depend on its input")
    return value, real, src


def _named_node(nodes: list[Any], output: str, name: str) -> Any:
    """The last traced node of the submodule ``output`` (or the node named so)."""
    for n in nodes:
        if n.name == output or (n.op == "call_module" and n.target == output):
            last = n
            break
    else:
        inside = [
            n for n in nodes if any(k == output for k in (n.meta.get("nn_module_stack") or {}))
        ]
        if not inside:
            modules = sorted({k for n in nodes for k in (n.meta.get("nn_module_stack") or {})})

            raise ValueError(
                f"from_torch: {name} has no submodule or node {output!r}"
                f"{did_you_mean(output, modules)}"
            )
        last = inside[-1]
    return last


def _output_node(torch: Any, conv: Converter, value: Value, real: Any, name: str):
    """The node whose units are the output's, and the output's grid axes: a feature
    vector's features, a map's spatial axes (2.. for a channels-first map)."""
    units = value.np()
    if units.ndim == 2:
        axes: tuple[int, ...] = (1,)
    else:
        moving = varying_axes([units])
        conv_axes = tuple(range(2, units.ndim))
        axes = conv_axes if set(moving) <= set(conv_axes) else moving
        if set(moving) == {1, *conv_axes} and len(conv_axes) == len(conv.graph.input_grid):
            # a map whose channels hold several positions (pixel_unshuffle, space to depth):
            # read channels first, as the model's input is, a unit standing for all its
            # channels; not a grid with the channels as one more axis
            axes = conv_axes
    node = conv.canonical(value, axes, f"{name} output") if axes else value.node
    if units.ndim == 2 and conv.grid(node) != (real.shape[1],):  # pragma: no cover
        raise ValueError(f"from_torch: cannot read the features of {name}'s output")
    return node, axes


def _pruned(nodes: list[Node], out: int) -> tuple[list[Node], list[int]]:
    """The nodes the output depends on, the output last, re-indexed; and which old indices
    they were."""
    need = {out}
    for i in range(out, 0, -1):
        if i in need:
            need.update(nodes[i].inputs)
    keep = sorted(need | {0})
    index = {old: new for new, old in enumerate(keep)}
    pruned = [
        Node(nodes[old].layer, tuple(index[j] for j in nodes[old].inputs), str(index[old]))
        if old
        else nodes[0]
        for old in keep
    ]
    return pruned, keep
