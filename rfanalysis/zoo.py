"""Architecture zoo: exact layer-for-layer definitions of networks people use.

An architecture name is not a definition: each entry's docstring names the exact layout it
follows (torchvision's unless stated), and published receptive-field numbers are only a test
for the layout they were computed on.

>>> "lenet" in names()
True
>>> get("lenet").spec()
'conv5,maxpool2,fc10'
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from ._layers import Conv, Dense, Network, Pool

_REGISTRY: dict[str, Callable[[], Network]] = {}


def _entry(name: str) -> Callable[[Callable[[], Network]], Callable[[], Network]]:
    def register(build: Callable[[], Network]) -> Callable[[], Network]:
        if name in _REGISTRY:  # pragma: no cover - programming error
            raise RuntimeError(f"zoo entry {name!r} defined twice")
        _REGISTRY[name] = build
        return build

    return register


def names() -> list[str]:
    """Names of all zoo entries, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> Network:
    """The network registered as ``name``.

    Raises
    ------
    ValueError
        For an unknown name, with the closest matches.
    """
    if not isinstance(name, str):
        raise TypeError(f"zoo name must be a string, got {type(name).__name__}")
    try:
        build = _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, names(), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"unknown zoo network {name!r}{hint} (rfanalysis.zoo.names() lists all)"
        ) from None
    return build()


def describe(name: str) -> str:
    """First paragraph of the entry's docstring (its source and layout)."""
    get(name)  # validates the name
    doc = _REGISTRY[name].__doc__ or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


@_entry("lenet")
def lenet() -> Network:
    """The LeNet-style network of the classic tutorial (Nielsen, "Neural Networks and Deep
    Learning", chapter 6): a 28x28 input, a 5x5 convolution with 20 feature maps (24x24),
    2x2 max pooling (12x12) and a dense layer with 10 outputs.

    Parameters: 20 x (5 x 5 + 1) = 520 in the convolution, 2880 x 10 + 10 = 28,810 in the
    dense layer.
    """
    return Network(
        [
            Conv(5, in_channels=1, out_channels=20, name="conv1"),
            Pool(2, name="pool1"),
            Dense(10, name="fc"),
        ],
        name="lenet",
    )
