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
Where paths meet (an add, a product or a concat) the field is the union over the operands,
and operands whose centres or jumps differ are reported as misaligned. Each operation keeps
its own rule (:meth:`rfanalysis._ops.base.Layer.field`); this module walks the plan.
"""

from __future__ import annotations

import csv
import io
import textwrap
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from ._engine import _context as resolve_context
from ._ops.base import GLOBAL, IDENTITY_FIELD, Field, fmt_shape
from ._ops.windows import phased
from ._plan import Plan, Step, plan
from ._table import markdown as table_markdown
from ._table import text as table_text

Axes = tuple[Any, ...]


#: how rows and fields say that a unit sees the whole input along an axis
WHOLE = "global"


@dataclass(frozen=True)
class GeometryRow:
    """One row of the table. Per-axis values are tuples; ``None`` means not applicable or
    unknown, and ``"global"`` (in ``rf_size``) a field that is the whole input along that
    axis. ``rf_local`` is the field size in context ``"local"`` where it differs (else None).
    """

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
    rf_local: Axes | None = None


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of the last layer's units, per axis.

    Attributes
    ----------
    size : tuple
        Field size in input pixels, or ``"global"`` on an axis where it is the whole input.
    stride : tuple
        Jump: input pixels between neighbouring units (a Fraction after upsampling; None where
        the field is global).
    padding : tuple
        Effective padding: how far unit 0's field reaches before the first pixel.
    start : tuple
        Input coordinate of unit 0's centre; unit ``o`` is centred on ``start + o * stride``.
    """

    size: Axes
    stride: Axes
    padding: Axes
    start: Axes

    @property
    def is_global(self) -> bool:
        """Whether the field is the whole input on every axis."""
        return all(s == WHOLE for s in self.size)

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
Fields = tuple[Any, ...]  # per input axis: a Field, or GLOBAL


def _axes_of(fields: Fields, what: str) -> tuple[Any, ...]:
    """Per-axis values; a field that is the whole input has size "global", one after a
    traced layout operation size "irregular", and neither has a jump or start."""
    if what == "rf":
        return tuple(
            _num(f.rf) if isinstance(f, Field) else WHOLE if f is GLOBAL else f for f in fields
        )
    return tuple(_num(getattr(f, what)) if isinstance(f, Field) else None for f in fields)


def _eff_padding(fields: Fields) -> tuple[Any, ...]:
    return tuple(_num(f.eff_padding) if isinstance(f, Field) else None for f in fields)


def _receptive_field(fields: Fields) -> ReceptiveField:
    return ReceptiveField(
        size=_axes_of(fields, "rf"),
        stride=_axes_of(fields, "jump"),
        padding=_eff_padding(fields),
        start=_axes_of(fields, "start"),
    )


def _row(step: Step, fields: Fields, local: Fields, note: str) -> GeometryRow:
    layer: Any = step.layer
    windowed = hasattr(layer, "kernel_size")
    stride = tuple(_num(Fraction(s)) for s in layer.stride) if windowed else None
    if getattr(layer, "scale_factor", None) is not None:  # upsampling: a fractional stride
        stride = tuple(_num(Fraction(1) / Fraction(f)) for f in layer.scale_factor)
    params, shared, lc, dense = layer.params(step)
    pads = getattr(step.data, "pads", None)
    rf, rf_local = _receptive_field(fields), _axes_of(local, "rf")
    return GeometryRow(
        index=step.path,
        layer=layer.label,
        kind=f"{layer.kind}pool" if layer.op_name == "pool" else layer.op_name,
        kernel=tuple(layer.kernel_size) if windowed else None,
        stride=stride,
        padding=pads if windowed else None,
        dilation=tuple(layer.dilation) if windowed else None,
        output=step.out_shape,
        channels=None if layer.flattens else step.out_channels,
        rf_size=rf.size,
        jump=rf.stride,
        start=rf.start,
        eff_padding=rf.padding,
        params=params,
        params_shared=shared,
        params_local=lc,
        params_dense=dense,
        note=note or (PHASE_NOTE if phased(layer) else ""),
        rf_local=None if rf_local == rf.size else rf_local,
    )


#: rows after which the classical table summarises units that differ by output phase
PHASE_NOTE = "output phases differ: size is their largest, start their mean"


def fields(p: Plan, context: str = "global") -> tuple[list[Fields], list[str]]:
    """Per step, the per-axis fields of its units (in ``context``) and the note of its rule.

    In context "local", an operation whose routes partly only modulate uses its local rule;
    where it leaves no carrying route, the unit keeps its global field.
    """
    out: list[Fields] = [(IDENTITY_FIELD,) * p.ndim]
    notes = [""]
    for step in p.ops:
        ins = tuple(out[j] for j in step.inputs)
        found = step.layer.local_field(step, ins) if context == "local" else None
        if found is None:
            found = step.layer.field(step, ins)
        out.append(found[0])
        notes.append(found[1])
    return out, notes


# --------------------------------------------------------------------------- table object
#: printed columns: (header, function of a row); parameter columns come last
def _window(row: GeometryRow) -> str:
    """Kernel, stride, padding and dilation in the spec grammar's letters: ``3 s2 p1``."""
    if row.kernel is None:
        return "x".join(f"/{v}" for v in row.stride) if row.stride else ""
    parts = [_axes_text(row.kernel)]
    if row.stride and any(v != 1 for v in row.stride):
        parts.append("s" + _axes_text(row.stride))
    if row.padding and any(p is None or p != (0, 0) for p in row.padding):
        parts.append("p" + _cell("padding", row.padding))
    if row.dilation and any(v != 1 for v in row.dilation):
        parts.append("d" + _axes_text(row.dilation))
    return " ".join(parts)


def _axes_text(values: tuple[Any, ...]) -> str:
    return _fmt_axes([str(v) for v in values])


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "padding":
        return _fmt_axes(
            ["?" if p is None else (str(p[0]) if p[0] == p[1] else f"{p[0]}+{p[1]}") for p in value]
        )
    if key in ("params", "params_local", "params_dense", "params_shared"):
        return f"{value:,}"
    if isinstance(value, tuple):
        if key == "output":
            return "x".join(str(v) for v in value)
        return _fmt_axes(["-" if v is None else str(v) for v in value])
    return str(value)


def _fmt_axes(values: list[str]) -> str:
    return values[0] if len(set(values)) == 1 else "x".join(values)


def _json_value(value: Any) -> Any:
    if isinstance(value, Fraction):
        return int(value) if value.denominator == 1 else float(value)
    if isinstance(value, (tuple, list)):
        return [_json_value(v) for v in value]
    return value


#: every field of a row, in CSV order
_CSV = [
    "index", "layer", "kind", "output", "channels", "kernel", "stride", "padding", "dilation",
    "rf_size", "rf_local", "jump", "start", "eff_padding", "params", "params_local",
    "params_dense", "note",
]  # fmt: skip

#: the printed table's columns: (header, row -> text); empty columns are left out
_COLUMNS: list[tuple[str, Any]] = [
    ("#", lambda r: r.index),
    ("layer", lambda r: r.layer),
    ("output", lambda r: _cell("output", r.output)),
    ("ch", lambda r: _cell("channels", r.channels)),
    ("window", _window),
    ("rf", lambda r: _cell("rf_size", r.rf_size)),
    ("rf local", lambda r: "" if r.rf_local is None else _cell("rf_size", r.rf_local)),
    ("jump", lambda r: _cell("jump", r.jump)),
    ("eff pad", lambda r: _cell("eff_padding", r.eff_padding)),
    ("params", lambda r: _cell("params", r.params)),
    ("as LC", lambda r: _cell("params_local", r.params_local)),
    ("as dense", lambda r: _cell("params_dense", r.params_dense)),
    ("note", lambda r: r.note),
]

LEGEND = (
    "window: kernel s(tride) p(adding before+after) d(ilation). rf: receptive field size in "
    "input pixels (global: the whole input); rf local: where context 'local' differs (gates, "
    "norm statistics and global attention dropped). jump: input pixels between neighbouring "
    "units. eff pad: how far unit 0's field reaches before the first pixel. params: weights "
    "and biases as given; as LC: if the layer were locally connected (one kernel per output "
    "position); as dense: if it were fully connected."
)


@dataclass(frozen=True)
class Geometry:
    """The receptive-field table of a network (see :func:`geometry`).

    Prints as an aligned text table with a legend; :meth:`to_dict`, :meth:`to_csv` and
    :meth:`to_markdown` export it. ``rows[0]`` is the input.
    """

    network: str
    input_shape: tuple[int, ...] | None
    rows: tuple[GeometryRow, ...]
    receptive_field: ReceptiveField
    local_receptive_field: ReceptiveField

    @property
    def params(self) -> int | None:
        """Total parameters as given (None if a layer's channel counts are unknown)."""
        values = [r.params for r in self.rows[1:]]
        if any(v is None for v in values):
            return None
        return sum(v for v in values if v is not None)

    def _table(self) -> tuple[list[str], list[list[str]]]:
        columns = _COLUMNS
        cells = [[fn(r) for _, fn in columns] for r in self.rows]
        keep = [
            i for i in range(len(columns)) if i < 2 or any(c[i] not in ("", "-") for c in cells)
        ]
        return [columns[i][0] for i in keep], [[c[i] for i in keep] for c in cells]

    def summary(self) -> str:
        """The last layer's receptive field in one line."""
        rf = self.receptive_field
        text = (
            f"receptive field {_cell('rf_size', rf.size)}, jump {_cell('jump', rf.stride)}, "
            f"effective padding {_cell('eff_padding', rf.padding)}"
        )
        if self.local_receptive_field.size != rf.size:
            text += f" (local: {_cell('rf_size', self.local_receptive_field.size)})"
        return text + ("" if self.params is None else f"; {self.params:,} parameters")

    def __str__(self) -> str:
        header, rows = self._table()
        size = "" if self.input_shape is None else f" at input {fmt_shape(self.input_shape)}"
        out = [f"{self.network}{size}", table_text(header, rows, left=2), self.summary()]
        if any(r.note == PHASE_NOTE for r in self.rows):
            out.append(
                "after upsampling the table summarises output phases; rfanalysis.routes() gives "
                "any unit's exact field"
            )
        out.append(textwrap.fill(LEGEND, 100))
        return "\n".join(out)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython
        printer.text(str(self))

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ints, floats (non-integral fractions), strings, lists, None."""
        return {
            "network": self.network,
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "receptive_field": {k: _json_value(v) for k, v in asdict(self.receptive_field).items()},
            "local_receptive_field": {
                k: _json_value(v) for k, v in asdict(self.local_receptive_field).items()
            },
            "params": self.params,
            "rows": [{k: _json_value(v) for k, v in asdict(r).items()} for r in self.rows],
        }

    def to_csv(self) -> str:
        """One line per row, every field, values formatted as in the printed table."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(_CSV)
        for row in self.rows:
            writer.writerow(
                [
                    _cell(k, getattr(row, k)).replace(",", "")
                    if k.startswith("params")
                    else _cell(k, getattr(row, k))
                    for k in _CSV
                ]
            )
        return buf.getvalue()

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown table."""
        header, rows = self._table()
        return table_markdown(header, rows, left=2)


def geometry(net: Any, input_shape: Any = None) -> Geometry:
    """The classical receptive-field table of a network.

    Parameters
    ----------
    net : any model :func:`rfanalysis.routes` takes
    input_shape : int or tuple of int, optional
        Needed for output sizes, parameter counts of the locally connected and dense
        alternatives, and ``"same"`` padding with stride > 1 (TF's rule depends on the size).

    Returns
    -------
    Geometry
        Rows: input, then every node in data-flow order (branch layers as ``5.body.1``, the
        merge of a block as ``5``), with output size, channels, kernel, stride, padding
        ``before+after``, dilation, receptive-field size (and its size in context
        ``"local"`` where that differs), jump, start (centre of unit 0), effective padding
        and parameter counts (as given, and if the layer were locally connected or dense).

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
    per_step, notes = fields(p)
    local, _ = fields(p, "local")
    identity = (IDENTITY_FIELD,) * p.ndim
    rows = [
        _row_input(p, identity),
        *(_row(s, per_step[s.index], local[s.index], notes[s.index]) for s in p.ops),
    ]
    return Geometry(
        p.network.display_name,
        p.input_shape,
        tuple(rows),
        _receptive_field(per_step[-1]),
        _receptive_field(local[-1]),
    )


def _row_input(p: Plan, identity: Fields) -> GeometryRow:
    rf = _receptive_field(identity)
    return GeometryRow(
        index="0",
        layer="input",
        kind="input",
        kernel=None,
        stride=None,
        padding=None,
        dilation=None,
        output=p.input_shape,
        channels=p.steps[0].out_channels,
        rf_size=rf.size,
        jump=rf.stride,
        start=rf.start,
        eff_padding=rf.padding,
        params=None,
        params_shared=None,
        params_local=None,
        params_dense=None,
    )


def receptive_field(
    net: Any, input_shape: Any = None, *, context: str | None = None
) -> ReceptiveField:
    """Receptive field of the last layer's units: ``.size``, ``.stride``, ``.padding`` (per-axis
    tuples) and ``.start``; ``context="local"`` drops the routes that only modulate (None: the
    network's own context, "global" unless it was made with another).

    >>> receptive_field("conv3p1*10").size
    (21, 21)
    >>> receptive_field("conv3p1*2,mul(id|gap)").size, receptive_field("conv3p1*2,mul(id|gap)",
    ...     context="local").size
    (('global', 'global'), (5, 5))
    """
    context = resolve_context(context, plan(net, input_shape))
    g = geometry(net, input_shape)
    return g.receptive_field if context == "global" else g.local_receptive_field


# --------------------------------------------------------------------------- connections
@dataclass(frozen=True, eq=False)
class Connections:
    """Every connection of one layer along one axis (see :func:`connections`).

    Attributes
    ----------
    index, layer : str
        The layer's position (``"5.body.2"``) and label.
    n_in, n_out : int
        Units along the axis before and after the layer.
    out, tap, position, source : ndarray of int, one entry per connection
        Output unit, kernel tap, the input coordinate the tap reads (outside ``[0, n_in)``
        where it reads padding; for transposed convolutions and upsampling, the input unit)
        and the input unit it reaches (-1: zero padding or a window's overhang, no route).
        A padding mode that redirects a tap gives ``source != position``.
    """

    index: str
    layer: str
    n_in: int
    n_out: int
    out: Any
    tap: Any
    position: Any
    source: Any


def connections(net: Any, input_shape: Any, axis: int = 0) -> list[Connections]:
    """The connections of every layer of a chain along one axis: which input unit each tap of
    each output unit reads, as the route engine counts them.

    >>> c = connections("conv3p1:reflect", (4,))[0]
    >>> c.position[:3].tolist(), c.source[:3].tolist()   # unit 0 reads -1, 0, 1
    ([-1, 0, 1], [1, 0, 1])
    """
    p = plan(net, input_shape)
    if p.input_shape is None:  # pragma: no cover - plan() requires it here
        raise ValueError("`input_shape` is required")
    if not 0 <= axis < p.ndim:
        raise ValueError(f"`axis` must be between 0 and {p.ndim - 1}, got {axis!r}")
    out = []
    for step in p.ops:
        rule = getattr(step.layer, "connections", None)
        if rule is None or step.inputs != (step.index - 1,):
            what = "dense layers" if step.layer.flattens else "merges of branches"
            raise ValueError(
                f"{step.where}: a route diagram and rfanalysis.connections cover chains of "
                f"convolution, pooling, transposed convolution and upsampling layers; {what} "
                "are not supported"
            )
        o, t, pos, src = rule(step, axis)
        assert step.in_shape is not None and step.out_shape is not None
        out.append(
            Connections(
                step.path,
                step.layer.label,
                step.in_shape[axis],
                step.out_shape[axis],
                o,
                t,
                pos,
                src,
            )
        )
    return out
