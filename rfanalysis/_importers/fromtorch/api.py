"""``from_torch``: a torch model as a network graph, checked against the model.

One short pipeline: capture the model (:mod:`.tracing`: an fx trace, converted on shapes
where it can, else on a random input; a model fx cannot trace is recorded as it runs), pick
the analysed map (:mod:`.output`), keep the nodes it depends on (an operation without a rule
elsewhere is no error), and, unless ``verify=False``, check the result against the module
itself (:mod:`.verify`): the capture must compute the module's own value of that map, and
the support of one output unit's autograd gradient, with the module's own weights, must lie
inside the support of its routes.
"""

from __future__ import annotations

import weakref
from typing import Any, overload

from ..._graph import Network, check_context
from ..._plan import DEFAULT_NDIM, normalise_input_shape, plan
from ..errors import ConversionError
from ..units import pruned, varying_axes
from . import output as outputs
from .converter import Converter
from .messages import check_overrides
from .modules import (
    ModuleState,
    module_dtype_device,
    module_in_channels,
    module_layout,
    module_ndim,
    require_torch,
)
from .tracing import (
    Converted,
    NoTrace,
    _Found,
    _random_input,
    _same,
    convert,
    fx_value,
    input_tensor_shape,
    recorded,
    traced,
)
from .units import Value, first_line
from .verify import _verify, _verify_two_sided

UNKNOWN = ("error", "identity")

_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple, Network]] = weakref.WeakKeyDictionary()


@overload
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
    layout: str | None = None,
) -> Network: ...


@overload
def from_torch(
    module: Any,
    input_shape: Any,
    *,
    output: list[str] | tuple[str, ...],
    context: str = "global",
    verify: bool | str = True,
    in_channels: int | None = None,
    overrides: dict[Any, Any] | None = None,
    unknown: str = "error",
    layout: str | None = None,
) -> dict[str, Network]: ...


def from_torch(
    module: Any,
    input_shape: Any,
    *,
    output: str | list[str] | tuple[str, ...] | None = None,
    context: str = "global",
    verify: bool | str = True,
    in_channels: int | None = None,
    overrides: dict[Any, Any] | None = None,
    unknown: str = "error",
    layout: str | None = None,
) -> Network | dict[str, Network]:
    """Trace a torch model into a :class:`~rfanalysis.Network` graph.

    Parameters
    ----------
    module : torch.nn.Module
        A model taking one tensor ``(batch, C, *spatial)`` (``(batch, *spatial, C)`` with
        ``layout="channels_last"``).
    input_shape : int or tuple of int
        Spatial input size (an int: every axis; the axes are those of the model's first
        convolution or pool, else 2). The graph is traced at this size: adaptive pools,
        interpolation sizes, token grids and attention windows are fixed by it.
    output : str or list of str, optional
        The map analysed instead of the model's output: a submodule's qualified name
        (``"layer4"``, ``"model.15"``; its output as the module computes it, found where it
        is produced), optionally followed by a path into what it returns; a path into what
        the model returns (``"0"``, ``"out"``, ``"logits"``, ``"feature_maps.-1"``: keys and
        indices, dotted); or, where no submodule has the name, a traced node's name. A name
        that is both a submodule and an entry of the model's result is refused. A list of
        names returns a dict of networks, the model captured once.
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
    layout : {"channels_first", "channels_last"}, optional
        How the model lays out its input: ``(batch, C, *spatial)`` or
        ``(batch, *spatial, C)``; a map it returns is read the same way. Default: the layout
        the model declares (a Keras 3 model on the torch backend: Keras's image data format,
        channels-last unless configured otherwise; its input channels and spatial axes
        too), else channels-first.

    Returns
    -------
    Network or dict of str to Network
        Nodes named after the modules (or traced nodes) they come from; a dict by name for a
        list of outputs. Traces are cached per module and arguments.

    Raises
    ------
    rfanalysis.ConversionError
        A ``ValueError``: for an operation without a mapping that the analysed map depends
        on (operations it does not depend on need none), a model that cannot be captured,
        or a graph whose routes miss units that the model's gradient reaches (one line
        naming where); with ``verify="two-sided"`` also for a graph whose routes reach pixels
        that no gradient does (one line naming the unit and where they part).

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
    many = isinstance(output, (list, tuple))
    names: list[Any] = list(output) if isinstance(output, (list, tuple)) else [output]
    if (many and not names) or any(
        (many or o is not None) and not isinstance(o, str) for o in names
    ):
        raise TypeError(f"`output` must be a name or a list of names, got {output!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"`output` names a map twice: {output!r}")
    mapping = check_overrides(overrides)
    if in_channels is not None and (
        isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1
    ):
        raise ValueError(f"`in_channels` must be a positive integer, got {in_channels!r}")
    layout = module_layout(module, layout)
    shape = normalise_input_shape(input_shape, module_ndim(module) or DEFAULT_NDIM)
    cin = in_channels or _declared_channels(module) or module_in_channels(module)
    cache = _CACHE.get(module, {}) if not mapping else {}
    keys = [(shape, cin, o, context, verify, unknown, layout) for o in names]
    if all(k in cache for k in keys):
        nets = [cache[k] for k in keys]
    else:
        try:
            nets = _from_torch(torch, module, shape, cin, names, context, verify, mapping,
                               unknown, layout)  # fmt: skip
        except ValueError as exc:  # every conversion failure is the one public class
            if type(exc) is ConversionError:
                raise
            raise ConversionError(str(exc)) from None
        if not mapping:
            _CACHE.setdefault(module, {}).update(zip(keys, nets))
    return dict(zip(names, nets)) if many else nets[0]


def _from_torch(torch, module, shape, cin, names, context, verify, mapping, unknown,
                layout="channels_first") -> list:  # fmt: skip
    """The networks of the maps ``names``, from one capture of the model: an fx trace on
    shapes where it can, else on values, else the model recorded as it runs; each checked
    against the module (unless ``verify`` is False), falling back to the next capture where
    the check finds that the capture computes another map than the module. ``layout``: how
    the model lays out its input."""
    name = type(module).__name__
    full = input_tensor_shape(cin, shape, layout)
    wanted = [outputs.parse(module, o) for o in names]
    state = ModuleState(module)  # eval mode before tracing: fx records the eval branches
    try:
        dtype, device = module_dtype_device(module)
        program = None
        try:
            program = traced(torch, module, mapping, name)
        except NoTrace:
            pass
        if program is not None:
            meta = torch.empty(full, dtype=dtype, device=torch.device("meta"))
            try:
                found = _maps(torch, program, meta, wanted, shape, cin, mapping, unknown,
                              context, name, layout)  # fmt: skip
            except Exception:  # whatever the shape run cannot do, the run on values does
                found = None
            if found is not None and (not verify or all(
                _verify(torch, module, f, shape, cin, name, o, layout)
                for f, o in zip(found, wanted)
            )):  # fmt: skip
                return _checked_two_sided(torch, module, found, shape, cin, name, verify,
                                          layout)  # fmt: skip
        # on values: the module's own maps on a random input decide between the captures
        x = _random_input(torch, full, dtype, device)
        found = None
        if program is not None:
            refs = _running(name, full, layout,
                            lambda: outputs.references(torch, module, x, wanted))  # fmt: skip
            try:
                found = _maps(torch, program, x, wanted, shape, cin, mapping, unknown, context,
                              name, layout)  # fmt: skip
                if not all(_agrees(torch, f, r) for f, r in zip(found, refs)):
                    found = None  # the fx trace computes another map than the module
            except (NoTrace, outputs.NotFound, RuntimeError, TypeError, IndexError):
                found = None
        if found is None:
            program = _running(name, full, layout,
                               lambda: recorded(torch, module, x, mapping))  # fmt: skip
            try:  # the recording has resolved the control flow: converted on shapes
                found = _maps(torch, program, x.to("meta"), wanted, shape, cin, mapping,
                              unknown, context, name, layout)  # fmt: skip
            except Exception:  # whatever the shape run cannot do, the run on values does
                found = _maps(torch, program, x, wanted, shape, cin, mapping, unknown, context,
                              name, layout)  # fmt: skip
    finally:
        state.restore()
    if verify:
        for f, o in zip(found, wanted):
            if not _verify(torch, module, f, shape, cin, name, o, layout):
                raise ConversionError(
                    f"from_torch: the capture of {name} computes another "
                    f"{'output' if o.text is None else repr(o.text)} than the module itself "
                    "on a random input; please report this"
                )
    return _checked_two_sided(torch, module, found, shape, cin, name, verify, layout)


def _checked_two_sided(torch, module, found, shape, cin, name, verify, layout) -> list:
    """The networks of ``found``, each also checked the other way round (every route pixel
    reached by a gradient) where ``verify`` is "two-sided"."""
    if verify == "two-sided":
        for f in found:
            _verify_two_sided(torch, module, f, shape, cin, name, layout)
    return [f.net for f in found]


def _running(name: str, full: tuple, layout: str, run: Any) -> Any:
    """``run()``, which runs the model on a random input of shape ``full``; its error in one
    line."""
    try:
        return run()
    except Exception as exc:  # the model's own error on this input
        raise ConversionError(
            f"from_torch: running {name} on an input of shape {full} "
            f"({layout.replace('_', ' ')}) failed ({type(exc).__name__}: {first_line(exc)}); "
            "check `input_shape` and `in_channels`"
        ) from None


def _maps(torch, program, x, wanted, shape, cin, mapping, unknown, context, name,
          layout="channels_first") -> list:  # fmt: skip
    """The analysed maps of a capture, converting only the operations they depend on."""
    srcs = [outputs.select(torch, program, o, name) for o in wanted]
    needed: set[Any] = set()
    todo = [s for s in srcs if s is not None]
    while todo:
        n = todo.pop()
        if n not in needed:
            needed.add(n)
            todo.extend(n.all_input_nodes)
    done = convert(torch, program, x, shape, cin, mapping, unknown, name, needed, layout)
    return [_finish(torch, done, o, src, shape, context, name, layout)
            for o, src in zip(wanted, srcs)]  # fmt: skip


def _agrees(torch: Any, found: _Found, reference: Any) -> bool:
    """Whether the captured map equals the module's own (None: the module has none)."""
    return reference is not None and _same(
        torch, fx_value(torch, found.run, found.fx_node), reference
    )


def _finish(torch, done: Converted, out: outputs.Output, src, shape, context, name,
            layout="channels_first") -> _Found:  # fmt: skip
    """The network of one analysed map (the capture's node ``src``): its nodes and those it
    depends on."""
    run = done.run
    failed = run.failed.get(src) if src is not None else None
    if failed is not None:
        raise ConversionError(failed)
    value = run.vals.get(src) if src is not None else None
    real = run.env.get(src) if src is not None else None
    if not isinstance(value, Value) or not isinstance(real, torch.Tensor):
        what = name if out.text is None else f"{name}'s {out.text!r}"
        raise ConversionError(f"from_torch: the output of {what} does not depend on its input")
    out_node, axes = _output_node(torch, done.conv, value, real, name, layout, len(shape))
    nodes, keep = pruned(done.graph.nodes, out_node)
    if len(nodes) < 2:
        raise ConversionError(
            f"from_torch: {name} has no layer that changes routes (it is the identity)"
        )
    net = Network.from_nodes(
        nodes, name=name if out.text is None else f"{name}:{out.text}", ndim=len(shape)
    )
    if context == "local":
        net = net.with_context("local")
    grid = tuple(real.shape[a] for a in axes) or (1,)
    got = plan(net, shape).output_shape
    if got != grid:  # pragma: no cover - the converter tracks grids as the planner does
        raise ConversionError(
            f"from_torch: the traced network gives output {got} but {name} gives {grid} for "
            f"input {shape}; please report this"
        )
    return _Found(done, net, keep, value, src, axes)


def _declared_channels(module: Any) -> int | None:
    """Input channels a model declares of itself (timm's ``pretrained_cfg["input_size"]``),
    where its first convolution would mislead (a space-to-depth stem reads more channels)."""
    cfg = getattr(module, "pretrained_cfg", None)
    if isinstance(cfg, dict) and isinstance(cfg.get("input_size"), (tuple, list)):
        size = cfg["input_size"]
        return int(size[0]) if size and isinstance(size[0], int) else None
    return None


# --------------------------------------------------------------------------- the output
def _output_node(torch: Any, conv: Converter, value: Value, real: Any, name: str,
                 layout: str = "channels_first", nd: int = 0):  # fmt: skip
    """The node whose units are the output's, and the output's grid axes: a feature
    vector's features, a map's spatial axes (2.. for a channels-first map, 1 to ndim - 2
    for a channels-last model's map with as many axes as its input)."""
    units = value.np()
    if units.ndim == 2:
        axes: tuple[int, ...] = (1,)
    else:
        moving = varying_axes([units])
        conv_axes = tuple(range(2, units.ndim))
        if layout == "channels_last" and units.ndim == nd + 2:
            conv_axes = tuple(range(1, units.ndim - 1))
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
