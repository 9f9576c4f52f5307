"""The compact spec grammar.

::

    spec  := item ("," item)*
    item  := (layer | "res(" spec ("|" spec)? ")" | merge "(" spec ("|" spec)+ ")" | "id" | global)
             ("*" N)?
    merge := cat | add | mul
    global := gap | gmp
    layer := kind K ("s" S)? ("p" P)? ("o" O)? ("d" D)? ("c")? (":" mode)?
    kind  := conv | lc | maxpool | avgpool | lppool | blurpool | tconv | up | fc
    P     := integer | "same" | "valid" | "full" | A ("x" A)*   (some A a pair)
    A     := integer | "(" before "," after ")"
    mode  := zeros | reflect | symmetric | replicate | circular

K, S, P, O, D may be written per axis as ``AxB`` (``conv3x5``); a padding that differs before
and after on some axis (TF's "SAME" at stride 2) is written per axis with pairs
``(before,after)``: ``conv3s2p(0,1)x(0,1)``, ``conv3p1x(0,1)``. Beyond the core grammar:
``res(body|shortcut)`` gives a residual block a projection shortcut, ``blurpool`` is blurred
downsampling (stride 2 unless given; it takes a padding mode as conv does), ``o`` is a
transposed convolution's output padding, a trailing ``c`` sets a pool's ``ceil_mode``, ``id`` is the
identity (an empty branch), and ``add(...)`` / ``mul(...)`` merge any number of branches by a
sum or a product (``mul(id|...)`` is a gate); ``gap`` / ``gmp`` pool globally (average or
max) to one unit: ``mul(id|gap,conv1,conv1)`` is a squeeze-and-excitation gate. Whitespace
around punctuation is ignored; keywords are case-insensitive. Errors name the position
(0-based) and the offending token.
"""

from __future__ import annotations

import re
from typing import Any

from ._graph import SPEC_KINDS, Concat, Network, Parallel, Residual
from ._ops import (
    BlurPool,
    Conv,
    ConvTranspose,
    Dense,
    GlobalPool,
    Layer,
    LocallyConnected,
    Pool,
    Upsample,
)
from ._ops.base import PADDING_MODES

_KINDS = SPEC_KINDS
_WORD = re.compile(r"[a-z0-9_.]+|.", re.S)
_INT = re.compile(r"\d+")
_SPACE = re.compile(r"\s*")
_IDENTITY = re.compile(r"id(?![a-z0-9])")
_MERGE = re.compile(r"(cat|add|mul)\(")
_GLOBAL = re.compile(r"g[am]p(?![a-z0-9])")
#: kinds that take a padding mode (":circular")
_MODES = ("conv", "blurpool")
#: suffixes allowed per kind, in the order the grammar lists them
_SUFFIXES = {
    "conv": "spd",
    "lc": "spd",
    "maxpool": "spdc",
    "avgpool": "spdc",
    "lppool": "spdc",
    "blurpool": "spd",
    "tconv": "spod",
    "up": "",
    "fc": "",
}


class _Parser:
    def __init__(self, text: str) -> None:
        self.original = text
        self.text = text.lower()
        self.pos = 0

    # -- helpers --------------------------------------------------------------------------
    def error(self, message: str, pos: int | None = None) -> ValueError:
        pos = self.pos if pos is None else pos
        if pos >= len(self.text):
            found = "end of spec"
        else:
            m = _WORD.match(self.original, pos)
            found = repr(m.group(0)) if m else repr(self.original[pos])
        return ValueError(
            f"cannot parse spec {self.original!r}: {message} at position {pos} (found {found})"
        )

    def skip_space(self) -> None:
        self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]

    def peek(self, literal: str) -> bool:
        self.skip_space()
        return self.text.startswith(literal, self.pos)

    def expect(self, literal: str, what: str) -> None:
        if not self.peek(literal):
            raise self.error(f"expected {what}")
        self.pos += len(literal)

    def integer(self, what: str) -> int:
        m = _INT.match(self.text, self.pos)
        if not m:
            raise self.error(f"expected {what}")
        self.pos = m.end()
        return int(m.group(0))

    def axes(self, what: str) -> int | tuple[int, ...]:
        values = [self.integer(what)]
        while self.text.startswith("x", self.pos) and _INT.match(self.text, self.pos + 1):
            self.pos += 1
            values.append(self.integer(what))
        return values[0] if len(values) == 1 else tuple(values)

    # -- grammar --------------------------------------------------------------------------
    def spec(self, closers: str = "") -> list[Layer]:
        layers = self.item()
        while self.peek(","):
            self.pos += 1
            layers += self.item()
        self.skip_space()
        if self.pos < len(self.text) and self.text[self.pos] not in closers:
            raise self.error("expected ',' or the end of the spec")
        return layers

    def item(self) -> list[Layer]:
        self.skip_space()
        start = self.pos
        if self.text.startswith("res(", self.pos):
            self.pos += 4
            body = self.spec(closers="|)")
            shortcut = None
            if self.peek("|"):
                self.pos += 1
                shortcut = self.spec(closers=")")
            self.expect(")", "')' to close 'res('")
            layers: list[Layer] = [self.construct(Residual, start, body, shortcut)]
        elif (merge := _MERGE.match(self.text, self.pos)) is not None:
            word = merge.group(1)
            self.pos = merge.end()
            branches = [self.spec(closers="|)")]
            while self.peek("|"):
                self.pos += 1
                branches.append(self.spec(closers="|)"))
            self.expect(")", f"')' to close '{word}('")
            if len(branches) < 2:
                raise self.error(f"'{word}(' needs at least two branches separated by '|'", start)
            if word == "cat":
                layers = [self.construct(Concat, start, *branches)]
            else:
                layers = [self.construct(lambda *b: Parallel(*b, merge=word), start, *branches)]
        elif _IDENTITY.match(self.text, self.pos):
            self.pos += 2
            layers = []
        elif (word := _GLOBAL.match(self.text, self.pos)) is not None:
            self.pos = word.end()
            layers = [GlobalPool("avg" if word.group(0) == "gap" else "max")]
        else:
            layers = [self.layer()]
        if self.peek("*"):
            self.pos += 1
            self.skip_space()
            at = self.pos
            count = self.integer("a repeat count after '*'")
            if count < 1:
                raise self.error("a repeat count must be at least 1", at)
            layers = layers * count
        return layers

    def layer(self) -> Layer:
        start = self.pos
        kind = next((k for k in _KINDS if self.text.startswith(k, self.pos)), None)
        if kind is None:
            raise self.error(
                "expected a layer (conv, lc, maxpool, avgpool, lppool, blurpool, tconv, up, fc, "
                "gap, gmp), 'res(', 'cat(', 'add(', 'mul(' or 'id'"
            )
        self.pos += len(kind)
        size = self.axes(f"a size after '{kind}'")
        args: dict[str, Any] = {}
        allowed = _SUFFIXES[kind]
        names = {"s": "stride", "p": "padding", "o": "output_padding", "d": "dilation"}
        while self.pos < len(self.text) and self.text[self.pos] in "spodc":
            letter = self.text[self.pos]
            if letter not in allowed:
                raise self.error(f"'{letter}' is not an option of '{kind}'")
            if names.get(letter, "ceil_mode") in args:
                raise self.error(f"'{letter}' given twice")
            self.pos += 1
            if letter == "c":
                args["ceil_mode"] = True
            elif letter == "p" and (word := self._padding_word()):
                args["padding"] = word
            elif letter == "p":
                args["padding"] = self._padding_pairs()
            else:
                args[names[letter]] = self.axes(f"a number after '{letter}'")
        mode = None
        if self.pos < len(self.text) and self.text[self.pos] == ":":
            self.pos += 1
            m = re.compile(r"[a-z]+").match(self.text, self.pos)
            if kind not in _MODES:
                raise self.error(f"a padding mode applies to conv and blurpool only, not '{kind}'")
            if not m or m.group(0) not in PADDING_MODES:
                raise self.error(f"expected a padding mode ({', '.join(PADDING_MODES)})")
            mode = m.group(0)
            self.pos = m.end()
        return self.construct(_build, start, kind, size, args, mode)

    def construct(self, factory: Any, start: int, *args: Any) -> Any:
        try:
            return factory(*args)
        except (ValueError, TypeError) as exc:
            raise self.error(str(exc), start) from None

    def _padding_pairs(self) -> int | tuple[int, ...] | tuple[tuple[int, int], ...]:
        """Padding as :meth:`axes` reads it (``1``, ``1x2``), or per axis with some axis
        uneven: ``(1,0)x(1,0)``, ``1x(0,1)`` (before, after)."""
        pairs = [self._padding_axis()]
        while self.text.startswith("x", self.pos) and (
            self.text.startswith("(", self.pos + 1) or _INT.match(self.text, self.pos + 1)
        ):
            self.pos += 1
            pairs.append(self._padding_axis())
        if any(b != a for b, a in pairs):
            return tuple(pairs)
        return pairs[0][0] if len(pairs) == 1 else tuple(b for b, _ in pairs)

    def _padding_axis(self) -> tuple[int, int]:
        if not self.text.startswith("(", self.pos):
            n = self.integer("a number or '(before,after)' after 'p'")
            return (n, n)
        self.pos += 1
        before = self.integer("the padding before, as in '(1,0)'")
        if not self.text.startswith(",", self.pos):
            raise self.error("expected ',' between the padding before and after, as in '(1,0)'")
        self.pos += 1
        after = self.integer("the padding after, as in '(1,0)'")
        if not self.text.startswith(")", self.pos):
            raise self.error("expected ')' after the padding before and after, as in '(1,0)'")
        self.pos += 1
        return (before, after)

    def _padding_word(self) -> str | None:
        for word in ("same", "valid", "full"):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return word
        return None


def _build(kind: str, size: Any, args: dict[str, Any], mode: str | None) -> Layer:
    if kind == "conv":
        return Conv(size, padding_mode=mode or "zeros", **args)
    if kind == "lc":
        return LocallyConnected(size, **args)
    if kind == "blurpool":
        return BlurPool(size, padding_mode=mode or "zeros", **args)
    if kind.endswith("pool"):
        return Pool(size, kind=kind[: -len("pool")], **args)
    if kind == "tconv":
        return ConvTranspose(size, **args)
    if kind == "up":
        return Upsample(size)
    if not isinstance(size, int):
        raise ValueError("fc takes a single number of output features")
    return Dense(size)


def parse(text: str, name: str | None = None) -> Network:
    """Parse a compact spec string into a :class:`~rfanalysis.Network`.

    Parameters
    ----------
    text : str
        For example ``"conv7s2p3,maxpool3s2p1,res(conv3p1,conv3p1)*2"``.
    name : str, optional
        Name of the returned network.

    Raises
    ------
    ValueError
        With the position and the token where parsing failed.

    Examples
    --------
    >>> parse("conv3p1:reflect*2,maxpool2s2")
    Network('conv3p1:reflect*2,maxpool2')
    >>> parse("conv5,maxpool2s2,fc10").layers[-1]
    Dense(10)
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a spec string, got {type(text).__name__}")
    parser = _Parser(text)
    if not text.strip():
        raise parser.error("the spec is empty")
    layers = parser.spec()
    if not layers:
        raise parser.error("the spec has no layers", 0)
    return Network(layers, name=name)
