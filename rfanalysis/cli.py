"""Command-line interface (``rfanalysis``): one thin function per subcommand.

User errors (a malformed spec, an impossible size, an unknown option) exit with status 2 and
one line ``Error: ...`` on stderr, and never leave a partial output file.
"""

from __future__ import annotations

import functools
import io
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import numpy as np

import rfanalysis as rfa
from rfanalysis import _sources
from rfanalysis._io import write_atomic
from rfanalysis._ops.base import fmt_shape

IMAGE_SUFFIXES = (".png", ".svg", ".pdf")
DATA_SUFFIXES = (".npy", ".csv", ".json")


class UserError(click.ClickException):
    """Bad input: exit status 2, one line."""

    exit_code = 2


class _Group(click.Group):
    """A group whose every error, click's usage errors included, is one line on stderr."""

    def main(
        self,
        args: Any = None,
        prog_name: Any = None,
        complete_var: Any = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            message = " ".join(exc.format_message().split())
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                message += f" (see '{exc.ctx.command_path} --help')"
            click.echo(f"Error: {message}", err=True)
            sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the library's documented errors into one-line CLI errors."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        raise UserError(" ".join(str(exc).split())) from None
    except ImportError as exc:  # a missing package: what to install
        raise UserError(" ".join(str(exc).split())) from None
    except OSError as exc:
        raise UserError(
            f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
        ) from None
    except MemoryError:
        raise UserError("not enough memory for this input size; use a smaller input") from None


# --------------------------------------------------------------------------- parameter parsing
def network_for(
    spec: str, input_shape: Any, required: bool = True, source: dict[str, Any] | None = None
) -> rfa.Network:
    """The network ``spec`` names (a model reference or ONNX file imported at ``--input``
    with the ``source`` options of :func:`model_options`), refusing an ``--input`` whose
    axes cannot be the network's: a zoo model's standard number of axes, or an image's
    channels given as an axis (``224,224,3``)."""
    if required and input_shape is None:
        raise click.UsageError("Missing option '--input'.")
    try:
        net = _sources.network(spec, input_shape, **(source or {}))
    except _sources.NeedsInputShape:
        raise click.UsageError(
            f"{spec} is a torch model: give --input, the size to trace it at (e.g. --input 224)"
        ) from None
    if isinstance(input_shape, tuple):
        _check_axes(spec, net, input_shape)
    return net


def _check_axes(spec: str, net: rfa.Network, shape: tuple[int, ...]) -> None:
    given = ",".join(map(str, shape))
    if rfa.zoo.is_name(spec):
        standard = rfa.zoo.standard_input(spec)
        if len(shape) > len(standard):
            raise ValueError(
                f"--input {given}: {spec} is a {len(standard)}-D model (standard input "
                f"{','.join(map(str, standard))}) but the input has {len(shape)} axes; "
                "channels are not an input axis"
            )
        return
    if net.ndim is not None or len(shape) < 3:
        return  # a network that fixes its axes says so when they differ
    for channels, image in ((shape[-1], shape[:-1]), (shape[0], shape[1:])):
        if channels <= 4 and min(image) >= 8 * channels:
            rest = ",".join(map(str, image))
            raise ValueError(
                f"--input {given}: {channels} looks like an image's channels, which are not an "
                f"input axis; write --input {rest} for a {len(image)}-D image, or give the "
                f"layers {len(shape)}-D values (conv{'x'.join(['3'] * len(shape))}) to "
                f"analyse a {len(shape)}-D volume"
            )


def _ints(value: str, what: str) -> tuple[int, ...]:
    parts = value.replace("x", ",").split(",")
    try:
        out = tuple(int(p) for p in parts)
    except ValueError:
        raise click.BadParameter(f"expected integers like 224 or 224,224; got {value!r}") from None
    return out


def _input_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    shape = _ints(value, "input")
    if any(n < 1 for n in shape):
        raise click.BadParameter(f"sizes must be >= 1, got {value!r}")
    return shape[0] if len(shape) == 1 else shape


def _unit_callback(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    if value == "center":
        return "center"
    try:
        return tuple(int(p) for p in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected 'center' or ROW,COL; got {value!r}") from None


def _output_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    path = Path(value)
    if path.suffix.lower() not in IMAGE_SUFFIXES + DATA_SUFFIXES:
        raise click.BadParameter(
            f"unsupported file type {path.suffix or '(none)'!r}; use one of "
            + ", ".join(IMAGE_SUFFIXES + DATA_SUFFIXES)
        )
    if path.parent and not path.parent.exists():
        raise click.BadParameter(f"folder {str(path.parent)!r} does not exist")
    return path


spec_argument = click.argument("spec", metavar="SPEC")


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of an imported model (ONNX file, torch model reference), passed to the
    command as one ``source`` dict for :func:`network_for`."""

    @functools.wraps(command)
    def run(
        *args: Any,
        output_node: str | None,
        in_channels: int | None,
        context: str | None,
        layout: str | None,
        **kwargs: Any,
    ) -> Any:
        source = {"output": output_node, "in_channels": in_channels, "context": context}
        return command(*args, source=dict(source, layout=layout), **kwargs)

    options = [
        click.option(
            "--output", "--output-node", "output_node", metavar="NAME",
            help="Imported models: the submodule, node or tensor whose map is analysed "
            "(layer4, model.15) instead of the model's output.",
        ),
        click.option(
            "--in-channels", type=click.IntRange(min=1), metavar="N",
            help="Torch models: input channels (default: those of the first convolution).",
        ),
        click.option(
            "--context", type=click.Choice(["global", "local"]),
            help="Count every route (global, the gradient's support) or drop those that "
            "only modulate: gates, norm statistics, attention beyond a window (local).",
        ),
        click.option(
            "--layout", type=click.Choice(list(_sources.LAYOUTS)),
            help="Torch models: channels_last for a model that takes (batch, *spatial, C).",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        run = option(run)
    return run


input_option = click.option(
    "--input",
    "input_shape",
    metavar="N[,N...]",
    callback=_input_callback,
    help="Input size: one number for every axis (2-D unless the network fixes its axes), "
    "or one per axis (224,160).",
)
output_option = click.option(
    "-o",
    "--out",
    "output",
    metavar="FILE",
    callback=_output_callback,
    help="Write an image (.png .svg .pdf) or data (.npy .csv .json) instead of a summary.",
)
log_option = click.option(
    "--log/--linear",
    "log",
    default=None,
    help="Images: colour scale (log by default). Data files and the summary: "
    "write log10 counts (--log) or counts (default).",
)
exact_option = click.option(
    "--exact",
    is_flag=True,
    help="Exact integer counts, for .csv, .json and the summary (not .npy or images).",
)


def format_option(*choices: str, help: str | None = None) -> Callable[[Any], Any]:
    """``--format`` (stored as ``fmt``): how a command prints, "table" by default."""
    return click.option(
        "--format", "fmt", type=click.Choice(list(choices)), default="table",
        show_default=True, help=help,
    )  # fmt: skip


def output_option_for(what: str) -> Callable[[Any], Any]:
    """``-o FILE`` for a command that writes ``what``: a figure or its numbers as .json."""
    return click.option(
        "-o", "--out", "output", metavar="FILE", callback=_output_callback,
        help=f"Write {what} (.png .svg .pdf) or the numbers (.json).",
    )  # fmt: skip


dpi_option = click.option(
    "--dpi",
    type=click.IntRange(10, 1200),
    default=150,
    show_default=True,
    help="Resolution of PNG images (and of the heatmap raster inside PDF and SVG).",
)


def _random_run(fn: Callable[..., Any], *args: Any, activation: str, seed: int, **kw: Any) -> Any:
    """``fn`` (influence or shift_invariance) of the random networks the options of
    :func:`random_network_options` describe; overflow advice in the CLI's words."""
    try:
        return fn(*args, activation=None if activation == "none" else activation, rng=seed, **kw)
    except FloatingPointError as exc:
        what = str(exc).split("; use ")[0]
        raise UserError(f"{what}; use fewer --channels or --weights normal") from None


def _figure_or_json(command: str, output: Path | None) -> str:
    """What ``-o`` of compare or shift writes: "json", "image" or "" (no file); .npy and .csv
    (maps) are refused."""
    if output is None:
        return ""
    suffix = output.suffix.lower()
    if suffix in (".npy", ".csv"):
        raise ValueError(f"{command} writes a figure (.png .svg .pdf) or its numbers (.json)")
    return "json" if suffix == ".json" else "image"


def random_network_options(trials: int) -> Callable[[Any], Any]:
    """--weights, --activation, --channels, --trials, --seed and --backend: the random
    networks that compare and shift measure, declared once (``trials``: its default)."""
    options = [
        click.option(
            "--weights",
            type=click.Choice(["normal", "uniform", "ones"]),
            default="normal",
            show_default=True,
            help="He-normal, He-uniform or all-ones weights.",
        ),
        click.option(
            "--activation",
            type=click.Choice(["relu", "none"]),
            default="relu",
            show_default=True,
            help="Non-linearity after every weighted layer but the last.",
        ),
        click.option(
            "--channels",
            type=click.IntRange(min=1),
            default=16,
            show_default=True,
            help="Channels of every hidden layer.",
        ),
        click.option(
            "--trials",
            type=click.IntRange(min=1),
            default=trials,
            show_default=True,
            help="Independent draws of weights and input, averaged.",
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the draws."),
        click.option(
            "--backend", type=click.Choice(["numpy", "torch"]), default="numpy", show_default=True
        ),
    ]

    def decorate(command: Any) -> Any:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


# --------------------------------------------------------------------------- output
def _summary(
    counts: np.ndarray, what: str, net: rfa.Network, shape: tuple[int, ...], log: bool
) -> str:
    flat = counts.ravel()
    lines = [f"{what} of {net.display_name} at input {fmt_shape(shape)}"]
    if net.name is None and net.is_tree:  # a compact spec: echo how it was read
        lines += _understood(net, len(shape))
    finite = flat[np.isfinite(flat.astype(float))] if log else flat
    if log:
        lines.append(f"log10 counts: max {finite.max():.6g}, min non-zero {finite.min():.6g}")
    else:
        values = flat.tolist()
        nonzero = [v for v in values if v != 0]
        lines.append(
            f"max {_g(max(values))}; min non-zero {_g(min(nonzero) if nonzero else 0)}; "
            f"total {_g(sum(values))}"
        )
        corner = counts[(0,) * counts.ndim]
        centre = counts[tuple((n - 1) // 2 for n in counts.shape)]
        lines.append(
            f"centre {_g(centre)}; corner {_g(corner)}"
            + (f"; centre/corner {_g(_ratio(centre, corner))}" if corner else "")
        )
    zero = int(np.count_nonzero(np.isneginf(counts.astype(float)) if log else counts == 0))
    lines.append(f"pixels with no route: {zero} of {counts.size}")
    if counts.size <= 400 and counts.ndim <= 2:
        with np.printoptions(linewidth=120, suppress=True, floatmode="maxprec"):
            lines.append(str(counts if counts.dtype == object or log else _intlike(counts)))
    return "\n".join(lines)


_POOL_WORDS = {"max": "max pool", "avg": "average pool", "lp": "power-average pool"}
_OP_WORDS = {"conv": "conv", "lc": "locally connected", "tconv": "transposed conv"}


def _axes_words(values: tuple[Any, ...], compress: bool = False) -> str:
    """Per-axis values joined by ``x``; ``compress``: one value where every axis agrees."""
    if compress and len(set(values)) == 1:
        values = values[:1]
    return "x".join(
        (str(v[0]) if v[0] == v[1] else f"{v[0]}+{v[1]}") if isinstance(v, tuple) else str(v)
        for v in values
    )


def _layer_words(layer: Any) -> str:
    """One layer as read from a spec, in words: ``conv 3x3, padding 1x20``."""
    if isinstance(layer, rfa.Residual):
        body = "; ".join(_layer_words(x) for x in layer.body)
        short = "; ".join(_layer_words(x) for x in layer.shortcut or ()) or "identity"
        return f"residual [{body}] + [{short}]"
    if isinstance(layer, (rfa.Concat, rfa.Parallel)):
        merge = "concat" if isinstance(layer, rfa.Concat) else layer.merge.op_name
        parts = ["; ".join(_layer_words(x) for x in b) or "identity" for b in layer.branches]
        return f"{merge} of [{'] | ['.join(parts)}]"
    kernel = getattr(layer, "kernel_size", None)
    if kernel is None:
        return layer.spec() if hasattr(layer, "spec") else layer.op_name
    name = _POOL_WORDS.get(getattr(layer, "kind", ""), _OP_WORDS.get(layer.op_name, layer.op_name))
    words = [f"{name} {_axes_words(kernel)}"]
    defaults = {"stride": 1, "padding": (0, 0), "dilation": 1}
    for field, default in defaults.items():
        value = getattr(layer, field, None)
        if isinstance(value, str):  # padding "same", "valid" or "full"
            words.append(f"{field} {value}")
        elif value is not None and any(v != default for v in value):
            words.append(f"{field} {_axes_words(value, compress=True)}")
    return ", ".join(words)


def _understood(net: rfa.Network, ndim: int) -> list[str]:
    """What a compact spec was read as, layer by layer with repeats counted (``conv3p1x20``
    reads as padding 1 on one axis and 20 on the other), and a note for every layer whose
    padding is at least its window: units there read nothing but padding."""
    words: list[list[Any]] = []
    notes = []
    for i, layer in enumerate(net.layers, start=1):
        layer = layer.expand(ndim)
        text = _layer_words(layer)
        if words and words[-1][0] == text:
            words[-1][1] += 1
        else:
            words.append([text, 1])
        padding = getattr(layer, "padding", None)
        spans = getattr(layer, "effective_kernel_size", None)
        # padding by name ("same", "full", ...) never reaches past the window
        if not isinstance(padding, tuple) or spans is None or isinstance(layer, rfa.ConvTranspose):
            continue
        for axis, ((before, after), span) in enumerate(zip(padding, spans)):
            if max(before, after) >= span:
                notes.append(
                    f"note: layer {i} ({layer.label}) pads {max(before, after)} on axis {axis} "
                    f"where its window spans {span}: units there read only padding"
                )
    text = "; ".join(w if n == 1 else f"{w} (x{n})" for w, n in words)
    return [f"read as: {_wrap(text, 100, max_lines=3)}", *notes]


def _g(value: Any) -> str:
    """A count with 6 significant digits (thousands separated); exact integers beyond the
    float64 range keep their leading digits and exponent."""
    try:
        return f"{value:,.6g}"
    except OverflowError:
        return f"{Decimal(value):.6g}"


def _ratio(a: Any, b: Any) -> Any:
    """``a / b`` (for Python ints correctly rounded at any size, where ``float(a)`` would
    overflow), or the integer quotient when even the quotient passes the float64 range."""
    try:
        return a / b
    except OverflowError:
        return a // b


def _intlike(a: np.ndarray) -> np.ndarray:
    return a.astype(np.int64) if np.all(a == np.round(a)) and np.abs(a).max() < 2**53 else a


def _write_data(path: Path, counts: np.ndarray, meta: dict[str, Any]) -> None:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, counts, allow_pickle=False)
        data = buf.getvalue()
    elif suffix == ".csv":
        if counts.ndim > 2:
            raise ValueError(f"CSV holds 1-D or 2-D maps; this map is {counts.ndim}-D (use .npy)")
        rows = counts.reshape(1, -1) if counts.ndim == 1 else counts
        text = "\n".join(",".join(_num(v) for v in row) for row in rows) + "\n"
        data = text.encode()
    else:
        payload = dict(meta, shape=list(counts.shape), values=_nested(counts))
        data = (json.dumps(payload) + "\n").encode()
    write_atomic(path, data)


def _plain(v: Any) -> int | float | None:
    """A count as JSON/CSV holds it: an int where it is one (below 2**53 for floats), None
    for log10 of zero routes (-inf)."""
    if isinstance(v, (int, np.integer)):
        return int(v)
    f = float(v)
    if f == -np.inf:
        return None
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def _num(v: Any) -> str:
    p = _plain(v)
    return "-inf" if p is None else repr(p)


def _nested(values: Any) -> Any:
    """``ndarray.tolist()`` of a count map with every count made plain (see :func:`_plain`);
    exact maps hold Python ints, which have no ``ndim``."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    return [_nested(v) for v in values] if isinstance(values, list) else _plain(values)


def _write_image(
    path: Path, draw: Callable[[Any], None], dpi: int, figsize: tuple[float, float]
) -> None:
    """Draw in the paper style on a pyplot-free Figure and write bytes that depend only on
    the content (no dates or versions)."""
    from matplotlib.figure import Figure

    from rfanalysis import plotting

    with plotting.paper_style():
        fig = Figure(figsize=figsize, layout="constrained")
        draw(fig)
        plotting.save_figure(fig, path, dpi)


def _central_slices(*maps: np.ndarray) -> tuple[tuple[np.ndarray, ...], int]:
    """The middle slice along the first axis of 3-D maps of one shape, and its index."""
    mid = (maps[0].shape[0] - 1) // 2
    return tuple(m[mid] for m in maps), mid


def _draw_counts(counts: np.ndarray, title: str, label: str, is_log10: bool):
    """A 2-D map (or the central slice along the first axis of a 3-D one) as a heatmap beside
    its border profile; a 1-D map as a profile. log10 counts are drawn on a log scale, plain
    counts on a linear one."""
    from rfanalysis import plotting

    def draw(fig: Any) -> None:
        data, heading = counts, title
        if data.ndim == 3:
            (data,), mid = _central_slices(data)
            heading += f"\ncentral slice: index {mid} of {counts.shape[0]} along axis 0"
        if data.ndim == 1:
            ax = fig.add_subplot()
            plotting.plot_profile(data, ax=ax, log=is_log10, is_log10=is_log10)
            ax.set_ylabel(label)
        else:
            plotting.coverage_figure(data, log=is_log10, is_log10=is_log10, label=label, fig=fig)
        fig.suptitle(heading)

    return draw


#: characters of a title line per inch of figure width (DejaVu Sans at the suptitle size)
TITLE_CHARS_PER_INCH = 10


def _wrap(text: str, width: int, max_lines: int = 3) -> str:
    """``text`` in lines of at most ``width`` characters, broken after spaces and the commas
    of a spec (inside a word only when it is longer than a line); past ``max_lines`` lines
    the last one ends in an ellipsis."""
    import re

    lines = [""]
    for token in re.split(r"(?<=[ ,])", text):
        while token:
            room = width - len(lines[-1])
            if len(token) > room and lines[-1]:
                lines.append("")
                continue
            lines[-1] += token[:width]
            token = token[width:]
    lines = [line.rstrip() for line in lines]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 1] + "…"
    return "\n".join(lines)


def _image_title(what: str, net: rfa.Network, size: str, unit: Any, width: float) -> str:
    """Two lines or more: what the map is, of which network (wrapped to the figure's
    ``width`` in inches), and the input size."""
    if what == "routes" and unit != "all":
        to = "the centre unit" if unit in (None, "center") else f"unit {tuple(unit)}"
        what = f"routes to {to}"
    elif what == "routes":
        what = "coverage"
    chars = int(width * TITLE_CHARS_PER_INCH)
    return f"{_wrap(f'{what} of {net.display_name}', chars)}\ninput {size}"


def _emit_counts(
    what: str,
    net: rfa.Network,
    shape: Any,
    counts: np.ndarray,
    output: Path | None,
    log: bool,
    dpi: int,
    extra: dict[str, Any],
) -> None:
    full_shape = counts.shape
    if output is None:
        click.echo(_summary(counts, what, net, full_shape, log))
        return
    size = fmt_shape(full_shape)
    if output.suffix.lower() in IMAGE_SUFFIXES:
        figsize = (6.0, 3.6) if counts.ndim == 1 else (9.0, 4.4)
        title = _image_title(what, net, size, extra.get("unit"), figsize[0])
        label = "routes to the unit" if what == "routes" else "routes to all output units"
        _write_image(output, _draw_counts(counts, title, label, log), dpi, figsize)
    else:
        meta = {
            "what": what,
            "network": net.display_name,
            "input_shape": list(full_shape),
            "values_are": (
                "log10 routes (null: no route)"
                if log
                else "routes (exact integers)"
                if counts.dtype == object
                else "routes"
            ),
            **extra,
        }
        _write_data(output, counts, meta)
    click.echo(f"wrote {output}", err=True)


def _compute(
    fn: Callable[..., np.ndarray],
    net: rfa.Network,
    shape: Any,
    output: Path | None,
    log: bool | None,
    exact: bool,
    **kwargs: Any,
) -> tuple[np.ndarray, bool]:
    """The counts to write and whether they are log10 counts.

    Images colour log10 counts (finite at any depth) unless ``--linear``; data files and the
    summary get counts, ``--log`` log10 counts, ``--exact`` Python integers. Combinations
    without a meaning are refused before any work: ``--exact`` with ``--log``, with ``.npy``
    (no Python integers without pickling) and with an image (colours need no exact integers).
    """
    suffix = None if output is None else output.suffix.lower()
    image = suffix in IMAGE_SUFFIXES
    if exact and log:
        raise UserError(
            "--exact and --log are exclusive: --exact gives exact integers, --log log10 "
            "counts; choose one"
        )
    if exact and image:
        raise UserError(
            f"--exact applies to data files (.csv, .json) and the summary, not to an image "
            f"({suffix}), whose colours need no exact integers: drop --exact"
        )
    if exact and suffix == ".npy":
        raise UserError(
            "--exact gives Python integers, which .npy cannot hold without pickling; "
            "write .csv or .json instead"
        )
    log10 = log is not False if image else bool(log)
    try:
        return fn(net, shape, exact=exact, log=log10, **kwargs), log10
    except rfa.CountOverflowError as exc:
        if image:
            advice = "draw them on the default logarithmic scale (drop --linear)"
        elif suffix == ".npy":
            advice = "use --log for log10 counts, or --exact with .csv or .json"
        else:
            advice = "use --log for log10 counts or --exact for exact integers"
        raise UserError(f"{str(exc).split('; use ')[0]}; {advice}") from None


# --------------------------------------------------------------------------- commands
@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(rfa.__version__, prog_name="rfanalysis")
def main() -> None:
    """Receptive fields, route counts and border coverage of convolutional networks.

    SPEC is a zoo name (see 'rfanalysis zoo'; NAME:trunk drops its classifier head), a
    compact spec such as 'conv7s2p3,maxpool3s2p1,res(conv3p1,conv3p1)*2', a .json/.toml
    spec file, an ONNX file (model.onnx), or a torch model built with random weights and
    traced at --input: torchvision:resnet50, timm:convnext_tiny, ultralytics:yolov8n.yaml,
    path/to/file.py:make_model or package.module:make_model (a callable returning the
    module).
    """


@main.command()
@spec_argument
@model_options
@input_option
@output_option
@log_option
@exact_option
@dpi_option
def coverage(
    spec: str,
    input_shape: Any,
    output: Path | None,
    log: bool | None,
    exact: bool,
    dpi: int,
    source: dict[str, Any],
) -> None:
    """Routes from every input pixel, summed over all output units."""
    with _user_errors():
        net = network_for(spec, input_shape, source=source)
        counts, is_log = _compute(rfa.coverage, net, input_shape, output, log, exact)
        _emit_counts("coverage", net, input_shape, counts, output, is_log, dpi, {})


@main.command()
@spec_argument
@model_options
@input_option
@click.option(
    "--unit",
    default="center",
    show_default=True,
    callback=_unit_callback,
    metavar="center|ROW,COL",
    help="Output unit the routes lead to.",
)
@output_option
@log_option
@exact_option
@dpi_option
def routes(
    spec: str,
    input_shape: Any,
    unit: Any,
    output: Path | None,
    log: bool | None,
    exact: bool,
    dpi: int,
    source: dict[str, Any],
) -> None:
    """Routes from every input pixel to one output unit."""
    with _user_errors():
        net = network_for(spec, input_shape, source=source)
        counts, is_log = _compute(rfa.routes, net, input_shape, output, log, exact, unit=unit)
        _emit_counts(
            "routes",
            net,
            input_shape,
            counts,
            output,
            is_log,
            dpi,
            {"unit": unit if isinstance(unit, str) else list(unit)},
        )


@main.command()
@spec_argument
@model_options
@input_option
@format_option("table", "csv", "json", "markdown")
@click.option(
    "-o",
    "--out",
    "output",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Write to FILE instead of standard output.",
)
def geometry(
    spec: str, input_shape: Any, fmt: str, output: str | None, source: dict[str, Any]
) -> None:
    """The receptive-field table: size, jump, start, effective padding and parameters."""
    with _user_errors():
        net = network_for(spec, input_shape, required=False, source=source)
        table = rfa.geometry(net, input_shape)
        text = {
            "table": lambda: str(table) + "\n",
            "csv": table.to_csv,
            "json": lambda: json.dumps(table.to_dict(), indent=2) + "\n",
            "markdown": table.to_markdown,
        }[fmt]()
        if output:
            write_atomic(Path(output), text.encode())
            click.echo(f"wrote {output}", err=True)
        else:
            click.echo(text, nl=False)


def _one_line(text: str, width: int = 90) -> str:
    """The first sentence of ``text``, cut at a word boundary to ``width`` characters."""
    import re

    # a sentence ends at a full stop before a capital ("et al. 2016" and "Fig. 1" do not)
    sentence = re.split(r"\.\s+(?=[A-Z])", text)[0].rstrip(".")
    if len(sentence) <= width:
        return sentence
    return sentence[: sentence.rfind(" ", 0, width - 3)] + "..."


#: geometry-row kinds (operation names) as the zoo summary counts them
_KIND_WORDS = {"gpool": "global pool", "apool": "adaptive pool", "attn": "attention"}
#: merges: counted apart from the layers (the blocks and graph joins of the network)
_MERGE_WORDS = {"add": "additions", "mul": "products", "cat": "concatenations"}


def _zoo_summary(name: str) -> list[str]:
    """Source, layers, receptive field, output and parameters of one zoo entry."""
    from collections import Counter

    def axes(values: tuple[Any, ...]) -> str:
        text = [str(v) for v in values]
        return text[0] if len(set(text)) == 1 else "x".join(text)

    def field(rf: Any) -> str:
        """Size, jump and effective padding, leaving out what windows leave unknown."""
        parts = [f"size {axes(rf.size)}"]
        if None not in rf.stride:
            parts.append(f"jump {axes(rf.stride)}")
        if None not in rf.padding:
            parts.append(f"effective padding {axes(rf.padding)}")
        return ", ".join(parts)

    net = rfa.zoo.get(name)
    shape = rfa.zoo.standard_input(name)
    table = rfa.geometry(net, shape)
    size = fmt_shape(shape)
    rows = table.rows[1:]
    kinds = Counter(r.kind for r in rows)
    layers = ", ".join(
        f"{n} {_KIND_WORDS.get(k, k)}" for k, n in kinds.items() if k not in _MERGE_WORDS
    )
    merges = ", ".join(f"{kinds[k]} {v}" for k, v in _MERGE_WORDS.items() if kinds[k])
    # the trunk's last map: what a classifier head pools or flattens
    trunk = rfa.geometry(rfa.zoo.get(name, trunk=True), shape)
    last = trunk.rows[-1]
    where = f"{last.layer.split(': ')[0]}, {fmt_shape(last.output or ())}"
    if last.channels is not None:
        where += f"x{last.channels}"
    rf = trunk.receptive_field
    if "global" in rf.size:
        # gates, norm statistics or attention read the whole input: the local field is the
        # one papers quote
        described = "global; in context 'local': " + field(trunk.local_receptive_field)
    else:
        described = field(rf)
    if table.params is not None:
        params = f"{table.params:,} (convolution and dense weights and biases; normalisation "
        params += "parameters are not counted)"
    else:
        unknown = [r.layer.split(": ")[0] for r in rows if r.params is None]
        params = f"unknown: no channel counts for {', '.join(unknown[:4])}"
        params += f" and {len(unknown) - 4} more" if len(unknown) > 4 else ""
    spec = net.spec() if net.is_tree else "none (a graph the compact grammar cannot write)"
    return [
        f"{name}: {rfa.zoo.describe(name)}",
        f"standard input: {size}",
        f"layers: {len(rows) - sum(kinds[k] for k in _MERGE_WORDS)} ({layers})"
        + (f"; merges: {merges}" if merges else ""),
        f"spec: {spec}",
        f"receptive field of the last spatial map ({where}) at {size}: {described}",
        f"output: {fmt_shape(table.rows[-1].output or ())}",
        f"parameters: {params}",
    ]


@main.command()
@spec_argument
@model_options
@input_option
@format_option("table", "json")
def blindspots(spec: str, input_shape: Any, fmt: str, source: dict[str, Any]) -> None:
    """Zero-coverage pixels, uneven padding, asymmetry and the nearest clean input sizes."""
    with _user_errors():
        report = rfa.blind_spots(network_for(spec, input_shape, source=source), input_shape)
    click.echo(json.dumps(report.to_dict(), indent=2) if fmt == "json" else str(report))


def _json_path(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    path = Path(value)
    if path.suffix.lower() != ".json":
        raise click.BadParameter(f"unsupported file type {path.suffix or '(none)'!r}; use .json")
    if path.parent and not path.parent.exists():
        raise click.BadParameter(f"folder {str(path.parent)!r} does not exist")
    return path


@main.command()
@spec_argument
@model_options
@click.option(
    "--tile",
    "tile",
    required=True,
    metavar="N[,N...]",
    callback=_input_callback,
    help="The largest input window that runs at once, in pixels per axis.",
)
@click.option(
    "--image",
    "image",
    metavar="N[,N...]",
    callback=_input_callback,
    help="An image size: also count its windows.",
)
@click.option(
    "-o", "--out", "output", metavar="FILE", callback=_json_path,
    help="Write the numbers (.json).",
)  # fmt: skip
def tiling(spec: str, tile: Any, image: Any, output: Path | None, source: dict[str, Any]) -> None:
    """Halo, alignment and step that make tile-by-tile outputs equal a whole-image run.

    --context local gives the halo of the local field (gates and norm statistics dropped)
    for a network that reads the whole map."""
    context = source.pop("context")
    with _user_errors():
        net = network_for(spec, tile, required=False, source=source)
        result = rfa.tiling(net, tile, context=context)
        if isinstance(image, int):
            image = (image,) * len(result.tile)
        text = result.table(image)
        if output is not None:
            write_atomic(output, (json.dumps(result.to_dict(image), indent=2) + "\n").encode())
    click.echo(text)


def _unit_or_all(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    return "all" if value == "all" else _unit_callback(ctx, param, value)


@main.command()
@spec_argument
@model_options
@input_option
@click.option(
    "--unit",
    default="center",
    show_default=True,
    callback=_unit_or_all,
    metavar="center|all|ROW,COL",
    help="Output unit; 'all' compares coverage with the gradient of the output's sum.",
)
@random_network_options(trials=32)
@format_option("table", "json", help="How to print the metrics.")
@output_option_for("the side-by-side figure")
@dpi_option
def compare(
    spec: str,
    input_shape: Any,
    unit: Any,
    weights: str,
    activation: str,
    channels: int,
    trials: int,
    seed: int,
    backend: str,
    fmt: str,
    output: Path | None,
    dpi: int,
    source: dict[str, Any],
) -> None:
    """Analytic routes beside the empirical gradient map |dy/dx| of a real network.

    The defaults give the effective receptive field of a randomly initialised ReLU network
    (He-normal weights, 16 channels, 32 trials), set against the exact route counts.
    """
    with _user_errors():
        kind = _figure_or_json("compare", output)
        net = network_for(spec, input_shape, source=source)
        analytic = (
            rfa.coverage(net, input_shape) if unit == "all" else rfa.routes(net, input_shape, unit)
        )
        empirical = _random_run(
            rfa.influence, net, input_shape, unit, weights=weights, activation=activation,
            channels=channels, trials=trials, seed=seed, backend=backend,
        )  # fmt: skip
        result = rfa.compare(analytic, empirical)
        settings = {
            "network": net.display_name,
            "input_shape": list(analytic.shape),
            "unit": unit if isinstance(unit, str) else list(unit),
            "weights": weights,
            "activation": activation,
            "channels": channels,
            "trials": trials,
            "seed": seed,
            "backend": backend,
        }
        if output is not None and kind == "json":
            text = json.dumps({**settings, "metrics": result.to_dict()}, indent=2) + "\n"
            write_atomic(output, text.encode())
            click.echo(f"wrote {output}", err=True)
            return
        if output is not None and kind == "image":
            figsize = (10.0, 3.8) if analytic.ndim != 1 else (6.0, 5.0)
            size = fmt_shape(analytic.shape)
            assert result.sqrt_routes is not None
            title = (
                f"{_image_title('routes', net, size, unit, figsize[0])}"
                f"\n{weights} weights, {activation}, {channels} channels, {trials} trials"
                f"\ntotal variation {result.total_variation:.3f} against routes, "
                f"{result.sqrt_routes.total_variation:.3f} against √routes"
            )
            _write_image(output, _draw_comparison(analytic, empirical, title), dpi, figsize)
            click.echo(f"wrote {output}", err=True)
        if fmt == "json":
            click.echo(json.dumps({**settings, "metrics": result.to_dict()}, indent=2))
        else:
            click.echo(
                f"{net.display_name} at input {fmt_shape(analytic.shape)}, "
                f"{weights} weights, {activation}, {channels} channels, {trials} trials"
            )
            click.echo(str(result))


def _draw_comparison(analytic: np.ndarray, empirical: np.ndarray, title: str):
    from rfanalysis import plotting

    def draw(fig: Any) -> None:
        a, e, note = analytic, empirical, ""
        if a.ndim == 3:
            (a, e), mid = _central_slices(a, e)
            note = f" (central slice {mid} along axis 0)"
        plotting.comparison_figure(
            a, e, fig=fig, titles=("analytic routes", "empirical |dy/dx|", "empirical - analytic")
        )
        fig.suptitle(title + note)

    return draw


def _shifts_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        values = [int(p) for p in value.split(",")]
    except ValueError:
        raise click.BadParameter(
            f"expected the largest shift (8) or a list of shifts (0,1,4); got {value!r}"
        ) from None
    return values if "," in value else values[0]


@main.command()
@spec_argument
@model_options
@input_option
@click.option(
    "--shifts",
    metavar="N|A,B,...",
    callback=_shifts_callback,
    help="Shifts in pixels: the largest (0 ... N) or a list. Default: 0 ... 2x the total stride.",
)
@click.option(
    "--axis",
    type=int,
    default=-1,
    show_default=True,
    help="Spatial axis to shift along (-1: the last, columns of an image).",
)
@click.option(
    "--mode",
    type=click.Choice(["circular", "crop"]),
    default="circular",
    show_default=True,
    help="Roll the input, or move a window over a larger input.",
)
@random_network_options(trials=16)
@format_option("table", "json", help="How to print the similarities.")
@output_option_for("the similarities against the shift as a figure")
@dpi_option
def shift(
    spec: str,
    input_shape: Any,
    shifts: Any,
    axis: int,
    mode: str,
    weights: str,
    activation: str,
    channels: int,
    trials: int,
    seed: int,
    backend: str,
    fmt: str,
    output: Path | None,
    dpi: int,
    source: dict[str, Any],
) -> None:
    """How much the output changes when the input shifts by a few pixels.

    Compares the globally pooled features, and the output map unit by unit, of random inputs
    and their shifts (1: unchanged, 0: as different as an unrelated input).
    """
    with _user_errors():
        kind = _figure_or_json("shift", output)
        net = network_for(spec, input_shape, source=source)
        result = _random_run(
            rfa.shift_invariance, net, input_shape, shifts, axis=axis, mode=mode,
            weights=weights, activation=activation, channels=channels, trials=trials,
            seed=seed, backend=backend,
        )  # fmt: skip
        text = json.dumps(result.to_dict(), indent=2) + "\n"
        if output is not None and kind == "json":
            write_atomic(output, text.encode())
            click.echo(f"wrote {output}", err=True)
            return
        if output is not None and kind == "image":
            _write_image(output, _draw_shift(result), dpi, _SHIFT_FIGSIZE)
            click.echo(f"wrote {output}", err=True)
        click.echo(text if fmt == "json" else str(result), nl=fmt != "json")


_SHIFT_FIGSIZE = (6.0, 3.8)


def _draw_shift(result: Any):
    from rfanalysis import plotting

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        plotting.plot_shift_similarity(result, ax=ax, label="pooled features")
        if result.map_similarity is not None:
            plotting.plot_shift_similarity(result, ax=ax, which="map", label="output map")
        ax.set_ylabel("similarity to the unshifted output")
        ax.legend()
        size = fmt_shape(result.input_shape)
        stride = "" if result.stride is None else f", total stride {result.stride}"
        chars = int(_SHIFT_FIGSIZE[0] * TITLE_CHARS_PER_INCH)
        name = _wrap(f"{result.network}, input {size}", chars)
        ax.set_title(f"{name}\n{result.mode} shifts{stride}")

    return draw


@main.command()
@click.argument("name", required=False)
def zoo(name: str | None) -> None:
    """List the zoo, or summarise one network at its standard input size."""
    with _user_errors():
        if name is None:
            width = max(map(len, rfa.zoo.names()))
            for n in rfa.zoo.names():
                size = fmt_shape(rfa.zoo.standard_input(n))
                click.echo(f"{n:<{width}}  {size:>9}  {_one_line(rfa.zoo.describe(n))}")
            return
        for line in _zoo_summary(name):
            click.echo(line)


def _progress(items: Any) -> Iterator[Any]:
    """A progress bar on a terminal; silent when stderr is piped or captured."""
    if not sys.stderr.isatty():
        yield from items
        return
    with click.progressbar(
        items,
        label="figures",
        file=sys.stderr,
        item_show_func=lambda spec: spec.name if spec else "",
    ) as bar:
        yield from bar


@main.command()
@click.option(
    "--out",
    default="figures",
    show_default=True,
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Folder for the PNG files.",
)
@click.option("--only", multiple=True, metavar="NAME", help="Build only this figure (repeatable).")
@click.option("--list", "list_only", is_flag=True, help="List the figures and their captions.")
def figures(out: str, only: tuple[str, ...], list_only: bool) -> None:
    """Rebuild the write-up's figures (deterministic PNG files)."""
    from rfanalysis import figures as catalogue

    with _user_errors():
        if list_only:
            for spec in catalogue.FIGURES.values():
                click.echo(f"{spec.name:<28} {spec.caption}")
            return
        written = catalogue.build(out, only or None, progress=_progress)
        click.echo(f"wrote {len(written)} figures to {out}", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
