"""Close-match suggestions for mistyped names (zoo entries, figures, ...)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(name: str, choices: Iterable[str], n: int = 2) -> list[str]:
    """Up to ``n`` choices that look like ``name``: similar enough (difflib ratio >= 0.75) and
    nearly as similar as the best one, so that a suggestion is likely what was meant
    (``'lenett'`` suggests ``'lenet'``, not every name ending in ``net``)."""
    scored = sorted(
        ((difflib.SequenceMatcher(None, name, c).ratio(), c) for c in choices), reverse=True
    )
    if not scored or scored[0][0] < 0.75:
        return []
    best = scored[0][0]
    return [c for ratio, c in scored[:n] if ratio >= best - 0.05]


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` or ``""``.

    >>> did_you_mean("lenett", ["lenet", "alexnet", "wavenet"])
    "; did you mean 'lenet'?"
    """
    close = close_matches(name, choices)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
