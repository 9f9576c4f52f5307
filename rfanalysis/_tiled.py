"""Run a network window by window and stitch the output (see :mod:`rfanalysis._tiling`).

Three runners share one loop: a torch module (batched on the module's device), an rfanalysis
network with random weights through the numpy backend (no torch needed: the write-up's
figures use it), and either of them over a Dask array, stitched lazily. torch and dask are
imported only when used.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from ._empirical._net import WEIGHT_NAMES, build, check_seed, draw, generators
from ._empirical._numpy import _Pass
from ._empirical._progress import Progress
from ._graph import is_torch_module
from ._importers.fromtorch import from_torch
from ._plan import _plan_cached, plan
from ._tiling import Tiling, TilingWarning, overlap_windows, sizes, tiling


def _is_dask(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "dask"


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


# --------------------------------------------------------------------------- numpy runner
class RandomNetwork:
    """An rfanalysis network with fixed random weights, run by the numpy backend at any input
    size: the same weights (drawn once, by layer) for every size, so that windows of an image
    and the whole image run the same function.

    ``channels`` fills channel counts the network leaves free; weights are He-normal
    (``"normal"``) or He-uniform, without biases; ``activation="relu"`` follows every weighted
    layer but the last (see :func:`rfanalysis.influence`).
    """

    def __init__(
        self,
        net: Any,
        *,
        channels: int = 4,
        in_channels: int = 1,
        weights: str = "normal",
        activation: str | None = "relu",
        rng: Any = 0,
    ):
        if weights not in WEIGHT_NAMES:
            raise ValueError(f"`weights` must be one of {', '.join(WEIGHT_NAMES)}; got {weights!r}")
        if activation not in (None, "relu"):
            raise ValueError(f"`activation` must be None or 'relu', got {activation!r}")
        check_seed(rng)
        p = plan(net)
        self.network = p.network
        self.ndim = p.ndim
        self.channels = channels
        self.in_channels = in_channels
        self.relu = activation == "relu"
        self.weights = weights
        self.seed = int(generators(rng, 1)[0].integers(2**63))
        self._params: dict[int, np.ndarray] | None = None
        self._models: dict[tuple[int, ...], Any] = {}

    def _model(self, shape: tuple[int, ...]) -> Any:
        if shape not in self._models:
            p = _plan_cached(self.network, shape, self.ndim)
            model = build(p, self.channels, self.in_channels, self.relu)
            if self._params is None:  # weights do not depend on the size: draw them once
                x0 = np.zeros((1, model.in_channels, *shape))
                _, params = draw(model, 1, self.weights, self.seed, x0)
                self._params = {op.step.index: params[id(op)] for op in model.weighted()}
            self._models[shape] = model
        return self._models[shape]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``x`` of shape ``(B, in_channels, *spatial)`` -> the output ``(B, C, *spatial')``."""
        if x.ndim != self.ndim + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"`x` must have shape (batch, {self.in_channels}, *spatial) with {self.ndim} "
                f"spatial axes, got {tuple(x.shape)}"
            )
        model = self._model(tuple(x.shape[2:]))
        assert self._params is not None
        w = {id(op): self._params[op.step.index] for op in model.weighted()}
        y, _ = _Pass(model, w, lambda: None).forward(np.asarray(x, dtype=np.float64))
        return y


# --------------------------------------------------------------------------- torch runner
def _torch_runner(module: Any) -> Callable[[Any], Any]:
    import torch

    params = list(module.parameters()) + list(module.buffers())
    device = params[0].device if params else torch.device("cpu")

    dtype = next((q.dtype for q in params if q.is_floating_point()), None)

    def run(x: Any) -> Any:
        t = torch.as_tensor(x)
        if not _is_tensor(x) and dtype is not None and t.is_floating_point():
            t = t.to(dtype)  # an array's float64 meets the module's own precision
        with torch.no_grad():
            return module(t.to(device))

    return run


# --------------------------------------------------------------------------- the loop
def tiled(
    model: Any,
    x: Any,
    tile: Any,
    *,
    input_shape: Any = None,
    context: str | None = None,
    batch_size: int = 4,
    overlap: float | None = None,
    progress: bool | None = None,
    channels: int = 4,
    weights: str = "normal",
    activation: str | None = "relu",
    rng: Any = 0,
) -> Any:
    """Run ``model`` on ``x`` window by window and return the stitched output.

    Parameters
    ----------
    model : torch.nn.Module, RandomNetwork, or anything :func:`tiling` takes
        A torch module runs on its own device (``x`` a tensor or a numpy array); an
        rfanalysis network (spec, zoo name, Network) runs through the numpy backend with
        random weights (``channels``, ``weights``, ``activation``, ``rng``; see
        :class:`RandomNetwork`, which can also be passed directly).
    x : array of shape ``(B, C, *spatial)``
        A torch tensor, a numpy array, or a Dask array (then the result is a Dask array,
        computed window by window when asked).
    tile : int or tuple of int
        The largest window, in input pixels per spatial axis.
    input_shape : optional
        Size at which to trace a torch module (default: the tile).
    context : {None, "local"}
        A network that is not exact (layers that read the whole map) is refused unless
        ``context="local"``; then it runs with the local field's halo and a
        :class:`TilingWarning` says that units near tile edges differ.
    batch_size : int
        Windows of one size run together.
    overlap : float, optional
        None: the computed halo (exact stitching). A fraction in ``[0, 1)``: the common
        practice instead, for comparison: windows of ``tile`` pixels overlapping by that
        fraction, outputs averaged where they overlap (0: cut into tiles).
    progress : bool, optional
        A progress bar on stderr (None: only on a terminal, for long runs).

    Returns
    -------
    The output of shape ``(B, C_out, *output_spatial)``, of ``x``'s kind (tensor, ndarray or
    Dask array).

    Examples
    --------
    >>> import numpy as np
    >>> net = RandomNetwork("conv3p1,conv3s2p1,conv3p1", rng=0)
    >>> x = np.random.default_rng(1).standard_normal((1, 1, 70, 50))
    >>> y = tiled(net, x, 24)
    >>> bool(np.allclose(y, net(x), rtol=0, atol=1e-12)), y.shape
    (True, (1, 4, 35, 25))
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}")
    if overlap is not None and (
        isinstance(overlap, bool) or not isinstance(overlap, (int, float)) or not 0 <= overlap < 1
    ):
        raise ValueError(f"`overlap` must be None or a fraction in [0, 1), got {overlap!r}")
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) < 3:
        raise ValueError(
            f"`x` must be an array of shape (batch, channels, *spatial), got shape {shape}"
        )
    sizes(tile, "tile", len(tile) if isinstance(tile, (tuple, list)) else None)
    if is_torch_module(model):
        spatial = tuple(int(n) for n in shape[2:])
        traced_at = input_shape or _tile_shape(tile, spatial)
        t = tiling(from_torch(model, traced_at), tile, input_shape=traced_at, context=context)
        run = _torch_runner(model)
    else:
        net = model if isinstance(model, RandomNetwork) else RandomNetwork(
            model, channels=channels, in_channels=int(shape[1]), weights=weights,
            activation=activation, rng=rng,
        )  # fmt: skip
        t = tiling(net.network, tile, context=context)
        run = net
    if len(shape) - 2 != len(t.tile):
        raise ValueError(
            f"`x` has {len(shape) - 2} spatial axes; the network has {len(t.tile)} "
            f"(shape {tuple(shape)})"
        )
    _check_exact(t, context)
    image = tuple(int(n) for n in shape[2:])
    if _is_dask(x):
        return _dask(t, run, x, image, overlap)
    if overlap is not None:
        out = _averaged(t, run, x, image, overlap, progress)
    else:
        out = _stitched(t, run, x, image, batch_size, progress)
    if _is_tensor(out) and not _is_tensor(x):  # a torch module on a numpy array
        return out.cpu().numpy()
    return out


def _tile_shape(tile: Any, spatial: tuple[int, ...]) -> Any:
    if isinstance(tile, (tuple, list)):
        return tuple(min(int(a), b) for a, b in zip(tile, spatial))
    return tuple(min(int(tile), b) for b in spatial)


def _check_exact(t: Tiling, context: str | None) -> None:
    if t.exact:
        return
    layers = "; ".join(t.global_layers)
    if context != "local":
        raise ValueError(
            f"{t.network} is not exact under tiling: {layers}; pass context='local' to run it "
            "with the halo of the local field (units near tile edges then differ)"
        )
    warnings.warn(
        f"{t.network}: tiles differ from a whole-image run near their edges: {layers}",
        TilingWarning,
        stacklevel=3,
    )


def _take(x: Any, sl: tuple[slice, ...]) -> Any:
    return x[(slice(None), slice(None), *sl)]


def _cat(parts: list[Any]) -> Any:
    if _is_tensor(parts[0]):
        import torch

        return torch.cat(parts, 0)
    return np.concatenate(parts, 0)


def _empty_like(x: Any, shape: tuple[int, ...], like: Any) -> Any:
    if _is_tensor(like):
        import torch

        device = x.device if _is_tensor(x) else torch.device("cpu")
        return torch.zeros(shape, dtype=like.dtype, device=device)
    return np.zeros(shape, dtype=like.dtype)


def _stitched(
    t: Tiling, run: Any, x: Any, image: tuple[int, ...], batch_size: int, progress: Any
) -> Any:
    wins = t.windows(image)
    groups: dict[tuple[int, ...], list[Any]] = defaultdict(list)
    for w in wins:
        groups[tuple(s.stop - s.start for s in w[0])].append(w)
    b = int(x.shape[0])
    out = None
    with Progress(len(wins), "tiles", enabled=progress, items="windows") as bar:
        for members in groups.values():
            for i in range(0, len(members), batch_size):
                chunk = members[i : i + batch_size]
                y = run(_cat([_take(x, w[0]) for w in chunk]))
                if out is None:
                    out = _empty_like(x, (b, int(y.shape[1]), *t.output_shape(image)), y)
                for k, (_, out_sl, keep_sl) in enumerate(chunk):
                    part = _take(y[k * b : (k + 1) * b], keep_sl)
                    out[(slice(None), slice(None), *out_sl)] = _to(part, out)
                bar.tick(len(chunk), items=len(chunk))
    return out


def _to(part: Any, out: Any) -> Any:
    if _is_tensor(out):
        return part.to(out.device)
    return part


def _averaged(
    t: Tiling, run: Any, x: Any, image: tuple[int, ...], overlap: float, progress: Any
) -> Any:
    """Overlapping windows of the tile's size, outputs averaged where they overlap."""
    size = t.output_shape(image)
    total: Any = None
    count: Any = None
    wins = overlap_windows(image, t.tile, overlap, t.output_jump)
    with Progress(len(wins), "tiles", enabled=progress, items="windows") as bar:
        for in_sl, offset in wins:
            y = run(_take(x, in_sl))
            if total is None:
                total = _empty_like(x, (int(x.shape[0]), int(y.shape[1]), *size), y)
                count = _empty_like(x, (1, 1, *size), y)
            src, dst = [], []
            for o, m, n in zip(offset, y.shape[2:], size):
                stop = min(o + int(m), n)
                dst.append(slice(o, stop))
                src.append(slice(0, stop - o))
            total[(slice(None), slice(None), *dst)] += _to(_take(y, tuple(src)), total)
            count[(slice(None), slice(None), *dst)] += 1
            bar.tick(1, items=1)
    assert total is not None and count is not None
    return total / count


# --------------------------------------------------------------------------- dask
def _dask(t: Tiling, run: Any, x: Any, image: tuple[int, ...], overlap: float | None) -> Any:
    """The stitched output as a Dask array, computed block by block when asked.

    ``dask.array.map_overlap`` runs one window per block: the input is rechunked so that each
    chunk is the span a window keeps, ``depth`` is the halo, and each block crops its window's
    kept units (``trim=False``). Where a halo is deeper than a chunk (tiles only a little
    larger than the field), which map_overlap does not allow, each window instead reads its
    own slice of the input.
    """
    import dask.array as da

    if overlap is not None:
        raise ValueError("`overlap` is for comparison on in-memory arrays, not Dask arrays")
    args = t.map_overlap_args(image)
    first = tuple(w[0][0] for w in args["windows"])
    probe = run(np.zeros((1, int(x.shape[1]), *_sizes(first)), dtype=x.dtype))
    c_out = int(probe.shape[1])
    dtype = np.dtype(str(probe.dtype).replace("torch.", ""))
    b, c = int(x.shape[0]), int(x.shape[1])

    def apply(arr: np.ndarray, keep: tuple[slice, ...]) -> np.ndarray:
        y = _take(run(arr), keep)
        return y.cpu().numpy() if _is_tensor(y) else np.asarray(y)

    if args["fits"]:
        wins, depth = args["windows"], args["depth"]
        starts = [np.concatenate([[0], np.cumsum(ch)[:-1]]) for ch in args["chunks"]]

        def block(arr: np.ndarray, block_info: Any = None) -> np.ndarray:
            loc = block_info[0]["chunk-location"][2:]
            sub, keep = [], []
            for ax, i in enumerate(loc):
                in_sl, _, keep_sl = wins[ax][i]
                origin = max(0, int(starts[ax][i]) - depth[ax][0])  # the block's first pixel
                sub.append(slice(in_sl.start - origin, in_sl.stop - origin))
                keep.append(keep_sl)
            return apply(_take(arr, tuple(sub)), tuple(keep))

        xx = x.rechunk(((b,), (c,), *args["chunks"]))
        return da.map_overlap(
            block,
            xx,
            depth={0: 0, 1: 0, **{2 + a: d for a, d in enumerate(depth)}},
            boundary="none",
            trim=False,
            allow_rechunk=False,
            chunks=((b,), (c_out,), *args["out_chunks"]),
            dtype=dtype,
            meta=np.empty((0,) * x.ndim, dtype=dtype),
        )

    def one(window: Any) -> Any:
        in_sl, out_sl, keep_sl = window
        sub = _take(x, in_sl)
        sub = sub.rechunk(sub.shape)
        shape = (b, c_out, *(s.stop - s.start for s in out_sl))
        return sub.map_blocks(
            apply, keep_sl, chunks=tuple((n,) for n in shape), dtype=dtype,
            meta=np.empty((0,) * x.ndim, dtype=dtype),
        )  # fmt: skip

    grid = [[(w[1].start, w[1].stop) for w in axis] for axis in args["windows"]]
    index = {tuple((s.start, s.stop) for s in w[1]): one(w) for w in t.windows(image)}
    return da.block(_nest(grid, (), index))


def _sizes(in_sl: tuple[slice, ...]) -> tuple[int, ...]:
    return tuple(s.stop - s.start for s in in_sl)


def _nest(per_axis: list[list[tuple[int, int]]], prefix: tuple, index: dict) -> Any:
    if len(prefix) == len(per_axis):
        return index[prefix]
    return [_nest(per_axis, (*prefix, (a, b)), index) for a, b in per_axis[len(prefix)]]
