"""Receptive-field geometry: the classical per-layer table.

Per axis and layer ``l`` (kernel ``k``, stride ``s``, dilation ``d``, leading padding ``p``,
``k_eff = d (k - 1) + 1``), starting from ``r_0 = 1``, ``j_0 = 1``, ``c_0 = 0``::

    r_l = r_{l-1} + (k_eff - 1) j_{l-1}                 receptive-field size
    j_l = j_{l-1} s                                     jump (effective stride)
    c_l = c_{l-1} + ((k_eff - 1) / 2 - p) j_{l-1}        centre of unit 0 (start)

Unit ``o`` of layer ``l`` is centred on input coordinate ``c_l + o j_l`` and its receptive
field spans ``[o j_l - P_l, o j_l - P_l + r_l - 1]``, with effective padding
``P_l = (r_l - 1) / 2 - c_l`` (Araujo, Norris & Sim, "Computing Receptive Fields of
Convolutional Neural Networks", Distill 2019). Transposed convolutions and upsampling divide the
jump (values become fractions); their size is the largest over output units and their start
the mean over output phases (a stride-s transposed convolution feeds alternate outputs from
alternate taps, so true centres alternate around it). A dense layer makes the field global.
For residual and concat blocks the field is the union over branches, and branches whose
centres or jumps differ are reported as misaligned.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from ._layers import (
    Concat,
    Conv,
    ConvTranspose,
    Dense,
    LocallyConnected,
    Pool,
    Residual,
    Upsample,
)
from ._plan import Node, Plan, Step, plan

Axes = tuple[Any, ...]


@dataclass(frozen=True)
class _State:
    """Per-axis receptive field of the current layer's units; None entries mean global
    (after a dense layer) or unknown (start, when padding depends on an unknown input size)."""

    rf: tuple[Fraction | None, ...]
    jump: tuple[Fraction | None, ...]
    start: tuple[Fraction | None, ...]

    @classmethod
    def identity(cls, ndim: int) -> _State:
        one, zero = Fraction(1), Fraction(0)
        return cls((one,) * ndim, (one,) * ndim, (zero,) * ndim)

    def eff_padding(self) -> tuple[Fraction | None, ...]:
        return tuple(
            None if r is None or c is None else (r - 1) / 2 - c for r, c in zip(self.rf, self.start)
        )


@dataclass(frozen=True)
class GeometryRow:
    """One row of the table. Per-axis values are tuples; ``None`` means not applicable or
    unknown (``rf_size`` None: the field is the whole input)."""

    index: str
    layer: str
    kind: str
    kernel: Axes | None
    stride: Axes | None
    padding: tuple[tuple[int, int] | None, ...] | None
    dilation: Axes | None
    output: tuple[int, ...] | None
    channels: int | None
    rf_size: Axes
    jump: Axes
    start: Axes
    eff_padding: Axes
    params: int | None
    params_shared: int | None
    params_local: int | None
    params_dense: int | None
    note: str = ""


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of the last layer's units, per axis.

    Attributes
    ----------
    size : tuple
        Field size in input pixels (None on an axis where it is the whole input).
    stride : tuple
        Jump: input pixels between neighbouring units (a Fraction after upsampling).
    padding : tuple
        Effective padding: how far unit 0's field reaches before the first pixel.
    start : tuple
        Input coordinate of unit 0's centre; unit ``o`` is centred on ``start + o * stride``.
    """

    size: Axes
    stride: Axes
    padding: Axes
    start: Axes

    def center(self, index: Any) -> tuple[Any, ...]:
        """Input coordinate of the centre of unit ``index`` (an int or a tuple)."""
        idx = (index,) * len(self.start) if isinstance(index, int) else tuple(index)
        return tuple(
            None if c is None or j is None else _num(c + o * j)
            for c, j, o in zip(self.start, self.stride, idx)
        )


def _num(x: Fraction | None) -> Any:
    """Fractions with denominator 1 become ints; others stay exact."""
    if x is None:
        return None
    return int(x) if x.denominator == 1 else x


# --------------------------------------------------------------------------- propagation
def _window(state: _State, step: Step) -> _State:
    layer: Any = step.layer
    rf: list[Any] = []
    jump: list[Any] = []
    start: list[Any] = []
    for a, (r, j, c) in enumerate(zip(state.rf, state.jump, state.start)):
        if r is None or j is None:
            rf.append(None)
            jump.append(None)
            start.append(None)
            continue
        if isinstance(layer, Upsample):
            f = Fraction(layer.scale_factor[a])
            rf.append(r)
            jump.append(j / f)
            start.append(None if c is None else c + j * (1 / (2 * f) - Fraction(1, 2)))
            continue
        k, s, d = layer.kernel_size[a], layer.stride[a], layer.dilation[a]
        pad: Any = step.pads[a]
        if isinstance(layer, ConvTranspose):
            span = _transposed_span(k, s, d)
            rf.append(r + span * j)
            jump.append(j / s)
            ke = d * (k - 1) + 1
            start.append(None if c is None else c + j * (pad[0] - Fraction(ke - 1, 2)) / s)
        else:
            ke = d * (k - 1) + 1
            rf.append(r + (ke - 1) * j)
            jump.append(j * s)
            start.append(
                None if c is None or pad is None else c + (Fraction(ke - 1, 2) - pad[0]) * j
            )
    return _State(tuple(rf), tuple(jump), tuple(start))


def _transposed_span(k: int, s: int, d: int) -> Fraction:
    """Largest distance (in input units) between two inputs feeding one output of a transposed
    convolution: taps ``t`` feeding output ``j`` satisfy ``t d = j + p (mod s)``."""
    best = 0
    for r in range(s):
        taps = [t for t in range(k) if (t * d - r) % s == 0]
        if taps:
            best = max(best, (taps[-1] - taps[0]) * d // s)
    return Fraction(best)


def _union(states: list[_State], names: tuple[str, ...]) -> tuple[_State, str]:
    ndim = len(states[0].rf)
    rf: list[Any] = []
    jump: list[Any] = []
    start: list[Any] = []
    notes: list[str] = []
    for a in range(ndim):
        rs: list[Any] = [st.rf[a] for st in states]
        js: list[Any] = [st.jump[a] for st in states]
        cs: list[Any] = [st.start[a] for st in states]
        if any(r is None for r in rs):
            rf.append(None)
            jump.append(None)
            start.append(None)
            continue
        jump.append(max(js))
        if len(set(js)) > 1:
            notes.append(
                f"axis {a}: branch jumps differ ("
                + ", ".join(f"{n} {j}" for n, j in zip(names, js))
                + ")"
            )
        if any(c is None for c in cs):
            rf.append(max(rs))
            start.append(None)
            continue
        lo = min(c - (r - 1) / 2 for c, r in zip(cs, rs))
        hi = max(c + (r - 1) / 2 for c, r in zip(cs, rs))
        rf.append(hi - lo + 1)
        start.append((lo + hi) / 2)
        if len(set(cs)) > 1:
            notes.append(
                f"axis {a}: branches misaligned, unit 0 centred at "
                + ", ".join(f"{n} {c}" for n, c in zip(names, cs))
            )
    note = "; ".join(notes)
    if ndim > 1 and notes and all(n.split(": ", 1)[1] == notes[0].split(": ", 1)[1] for n in notes):
        note = "all axes: " + notes[0].split(": ", 1)[1]
    return _State(tuple(rf), tuple(jump), tuple(start)), note


# --------------------------------------------------------------------------- parameters
def _params(step: Step) -> tuple[int | None, int | None, int | None, int | None]:
    """(as given, shared conv, locally connected, dense) parameter counts, where known."""
    layer: Any = step.layer
    if isinstance(layer, (Pool, Upsample)):
        return 0, None, None, None
    cin, cout = step.in_channels, step.out_channels
    n_in = None if step.in_shape is None else math.prod(step.in_shape)
    n_out = None if step.out_shape is None else math.prod(step.out_shape)
    bias = 1 if layer.bias else 0
    if isinstance(layer, Dense):
        if cin is None or n_in is None:
            return None, None, None, None
        full = n_in * cin * layer.out_features + bias * layer.out_features
        return full, None, None, full
    if cin is None or cout is None:
        return None, None, None, None
    taps = math.prod(layer.kernel_size)
    groups = getattr(layer, "groups", 1)
    shared = taps * (cin // groups) * cout + bias * cout
    local: int | None = None
    dense: int | None = None
    if n_out is not None and n_in is not None:
        local = n_out * shared
        dense = n_in * cin * n_out * cout + bias * n_out * cout
    if isinstance(layer, LocallyConnected):
        return local, shared, local, dense
    return shared, shared, local, dense


_KIND = {
    Conv: "conv",
    LocallyConnected: "lc",
    Pool: "pool",
    ConvTranspose: "tconv",
    Upsample: "up",
    Dense: "fc",
    Residual: "res",
    Concat: "cat",
}


def _step_row(step: Step, state: _State) -> GeometryRow:
    layer: Any = step.layer
    windowed = not isinstance(layer, (Dense, Upsample))
    kernel = tuple(layer.kernel_size) if windowed else None
    stride = tuple(layer.stride) if windowed else None
    if isinstance(layer, Upsample):
        stride = tuple(Fraction(1) / Fraction(f) for f in layer.scale_factor)
    dilation = tuple(layer.dilation) if windowed else None
    params, shared, local, dense = _params(step)
    return GeometryRow(
        index=step.path,
        layer=layer.label,
        kind=_KIND[type(layer)] if not isinstance(layer, Pool) else f"{layer.kind}pool",
        kernel=kernel,
        stride=None if stride is None else tuple(_num(Fraction(s)) for s in stride),
        padding=step.pads if windowed else None,
        dilation=dilation,
        output=step.out_shape,
        channels=step.out_channels,
        rf_size=tuple(_num(x) for x in state.rf),
        jump=tuple(_num(x) for x in state.jump),
        start=tuple(_num(x) for x in state.start),
        eff_padding=tuple(_num(x) for x in state.eff_padding()),
        params=params,
        params_shared=shared,
        params_local=local,
        params_dense=dense,
        note=PHASE_NOTE if _phased(layer) else "",
    )


#: rows after which the classical table summarises units that differ by output phase
PHASE_NOTE = "output phases differ: size is their largest, start their mean"


def _phased(layer: Any) -> bool:
    """A transposed convolution with stride > 1 or a non-unit upsampling: neighbouring output
    units read their inputs through different taps, so their fields differ."""
    if isinstance(layer, ConvTranspose):
        return any(s > 1 for s in layer.stride)
    if isinstance(layer, Upsample):
        return any(f != 1 for f in layer.scale_factor)
    return False


def _walk(nodes: tuple[Node, ...], state: _State, rows: list[GeometryRow]) -> _State:
    for node in nodes:
        if isinstance(node, Step):
            if isinstance(node.layer, Dense):
                ndim = len(state.rf)
                state = _State((None,) * ndim, (None,) * ndim, (None,) * ndim)
            else:
                state = _window(state, node)
            rows.append(_step_row(node, state))
            continue
        ends = [_walk(branch, state, rows) for branch in node.branches]
        state, note = _union(ends, node.branch_names)
        rows.append(
            GeometryRow(
                index=node.path,
                layer=node.layer.name or ("add" if isinstance(node.layer, Residual) else "concat"),
                kind=_KIND[type(node.layer)],
                kernel=None,
                stride=None,
                padding=None,
                dilation=None,
                output=node.out_shape,
                channels=node.out_channels,
                rf_size=tuple(_num(x) for x in state.rf),
                jump=tuple(_num(x) for x in state.jump),
                start=tuple(_num(x) for x in state.start),
                eff_padding=tuple(_num(x) for x in state.eff_padding()),
                params=0,
                params_shared=None,
                params_local=None,
                params_dense=None,
                note=note,
            )
        )
    return state


# --------------------------------------------------------------------------- table object
_COLUMNS = [
    ("index", "#"),
    ("layer", "layer"),
    ("output", "output"),
    ("channels", "ch"),
    ("kernel", "kernel"),
    ("stride", "stride"),
    ("padding", "pad"),
    ("dilation", "dil"),
    ("rf_size", "rf"),
    ("jump", "jump"),
    ("start", "start"),
    ("eff_padding", "eff pad"),
    ("params", "params"),
    ("params_local", "if local"),
    ("params_dense", "if dense"),
    ("note", "note"),
]


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "all" if key == "rf_size" else "-"
    if key == "padding":
        return _fmt_axes(
            ["?" if p is None else (str(p[0]) if p[0] == p[1] else f"{p[0]}+{p[1]}") for p in value]
        )
    if key in ("params", "params_local", "params_dense", "params_shared"):
        return f"{value:,}"
    if isinstance(value, tuple):
        if key == "output":
            return "x".join(str(v) for v in value)
        return _fmt_axes(
            [
                "all" if v is None and key == "rf_size" else "-" if v is None else str(v)
                for v in value
            ]
        )
    return str(value)


def _fmt_axes(values: list[str]) -> str:
    return values[0] if len(set(values)) == 1 else "x".join(values)


def _json_value(value: Any) -> Any:
    if isinstance(value, Fraction):
        return int(value) if value.denominator == 1 else float(value)
    if isinstance(value, (tuple, list)):
        return [_json_value(v) for v in value]
    return value


@dataclass(frozen=True)
class Geometry:
    """The receptive-field table of a network (see :func:`geometry`).

    Prints as an aligned text table; :meth:`to_dict`, :meth:`to_csv` and :meth:`to_markdown`
    export it. ``rows[0]`` is the input.
    """

    network: str
    input_shape: tuple[int, ...] | None
    rows: tuple[GeometryRow, ...]
    receptive_field: ReceptiveField

    @property
    def params(self) -> int | None:
        """Total parameters as given (None if a layer's channel counts are unknown)."""
        values = [r.params for r in self.rows[1:] if r.kind not in ("res", "cat")]
        if any(v is None for v in values):
            return None
        return sum(v for v in values if v is not None)

    def _table(self) -> list[list[str]]:
        keep = [
            (k, h)
            for k, h in _COLUMNS
            if k in ("index", "layer") or any(getattr(r, k) not in (None, "") for r in self.rows)
        ]
        lines = [[h for _, h in keep]]
        for row in self.rows:
            lines.append([_cell(k, getattr(row, k)) for k, _ in keep])
        return lines

    def __str__(self) -> str:
        lines = self._table()
        widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
        out = [
            f"{self.network}"
            + (f" at input {'x'.join(map(str, self.input_shape))}" if self.input_shape else "")
        ]
        for n, line in enumerate(lines):
            cells = [
                c.ljust(w) if i < 2 or lines[0][i] == "note" else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths))
            ]
            out.append("  ".join(cells).rstrip())
            if n == 0:
                out.append("  ".join("-" * w for w in widths))
        rf = self.receptive_field
        out.append(
            f"receptive field {_cell('rf_size', rf.size)}, jump {_cell('jump', rf.stride)}, "
            f"effective padding {_cell('eff_padding', rf.padding)}"
            + ("" if self.params is None else f"; {self.params:,} parameters")
        )
        if any(r.note == PHASE_NOTE for r in self.rows):
            out.append(
                "after upsampling the table summarises output phases; rfanalysis.routes() gives "
                "any unit's exact field"
            )
        return "\n".join(out)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython
        printer.text(str(self))

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ints, floats (non-integral fractions), strings, lists, None."""
        return {
            "network": self.network,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "receptive_field": {k: _json_value(v) for k, v in asdict(self.receptive_field).items()},
            "params": self.params,
            "rows": [{k: _json_value(v) for k, v in asdict(r).items()} for r in self.rows],
        }

    def to_csv(self) -> str:
        """One line per row, every column, values formatted as in the printed table."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        keys = [k for k, _ in _COLUMNS]
        writer.writerow(keys)
        for row in self.rows:
            writer.writerow(
                [
                    _cell(k, getattr(row, k)).replace(",", "")
                    if k.startswith("params")
                    else _cell(k, getattr(row, k))
                    for k in keys
                ]
            )
        return buf.getvalue()

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown table."""
        lines = self._table()
        out = [
            "| " + " | ".join(lines[0]) + " |",
            "|" + "|".join("---" if i < 2 else "---:" for i in range(len(lines[0]))) + "|",
        ]
        for line in lines[1:]:
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |")
        return "\n".join(out) + "\n"


def geometry(net: Any, input_shape: Any = None) -> Geometry:
    """The classical receptive-field table of a network.

    Parameters
    ----------
    net : Network, layer, sequence of layers, or spec string
    input_shape : int or tuple of int, optional
        Needed for output sizes, parameter counts of the locally connected and dense
        alternatives, and ``"same"`` padding with stride > 1 (TF's rule depends on the size).

    Returns
    -------
    Geometry
        Rows: input, then every layer in data-flow order (branch layers as ``5.body.1``, the
        merge of a block as ``5``), with output size, channels, kernel, stride, padding
        ``before+after``, dilation, receptive-field size, jump, start (centre of unit 0),
        effective padding and parameter counts (as given, and if the layer were locally
        connected or dense).

    Notes
    -----
    Recurrences as in Araujo et al. (Distill, 2019); see the module docstring.

    Examples
    --------
    >>> g = geometry("conv3*3,maxpool2s2,conv3")
    >>> g.receptive_field.size, g.receptive_field.stride
    ((12, 12), (2, 2))
    """
    p = plan(net, input_shape)
    state = _State.identity(p.ndim)
    rows = [
        GeometryRow(
            index="0",
            layer="input",
            kind="input",
            kernel=None,
            stride=None,
            padding=None,
            dilation=None,
            output=p.input_shape,
            channels=_input_channels(p),
            rf_size=(1,) * p.ndim,
            jump=(1,) * p.ndim,
            start=(0,) * p.ndim,
            eff_padding=(0,) * p.ndim,
            params=None,
            params_shared=None,
            params_local=None,
            params_dense=None,
        )
    ]
    state = _walk(p.nodes, state, rows)
    rf = ReceptiveField(
        size=tuple(_num(x) for x in state.rf),
        stride=tuple(_num(x) for x in state.jump),
        padding=tuple(_num(x) for x in state.eff_padding()),
        start=tuple(_num(x) for x in state.start),
    )
    return Geometry(p.network.display_name, p.input_shape, tuple(rows), rf)


def _input_channels(p: Plan) -> int | None:
    steps = p.steps()
    return steps[0].in_channels if steps else None


def receptive_field(net: Any, input_shape: Any = None) -> ReceptiveField:
    """Receptive field of the last layer's units: ``.size``, ``.stride``, ``.padding`` (per-axis
    tuples) and ``.start``.

    >>> receptive_field("conv3p1*10").size
    (21, 21)
    """
    return geometry(net, input_shape).receptive_field
