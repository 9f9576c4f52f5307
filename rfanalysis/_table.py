"""One renderer for the result tables (geometry, comparison, blind spots): aligned text and
GitHub-flavoured Markdown, from a header and rows of strings."""

from __future__ import annotations

from collections.abc import Sequence


def text(
    header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1, rule: bool = True
) -> str:
    """Columns padded to their widest cell; the first ``left`` columns (and any header
    ending in ``note``) left-aligned, the rest right-aligned; a dashed rule under the header.

    >>> print(text(["name", "n"], [["a", "1"], ["bb", "10"]]))
    name   n
    ----  --
    a      1
    bb    10
    """
    lines = [list(header), *(list(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [
            c.ljust(w) if i < left or header[i].endswith("note") else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths))
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0 and rule:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A Markdown table, the first ``left`` columns left-aligned and the rest right-aligned.

    >>> print(markdown(["name", "n"], [["a|b", "1"]]), end="")
    | name | n |
    |---|---:|
    | a\\|b | 1 |
    """
    out = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i < left else "---:" for i in range(len(header))) + "|",
    ]
    for line in rows:
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |")
    return "\n".join(out) + "\n"
