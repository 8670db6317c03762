"""GitHub-Markdown tables for the package (key space, security, Tables 2-3, claims).

The writing is pandas' ``DataFrame.to_markdown`` (tabulate's ``pipe`` format: padded
columns, alignment colons); :func:`markdown_table` only maps the package's row dicts,
headers and alignments onto it.
"""
from __future__ import annotations

ALIGNMENTS = ("left", "right", "center")


def markdown_table(rows: list[dict], columns: dict | list | None = None,
                   align: dict | None = None) -> str:
    """A GitHub Markdown table, one line per row, ending in a newline.

    ``rows``: dicts; cells are written with ``str`` as given (format numbers before; a
    string that looks like a number is never re-formatted).
    ``columns``: the keys to show in order, or {key: header}; default: the first row's keys.
    ``align``: {key: "left" | "right" | "center"}; other columns are left-aligned.
    """
    import pandas as pd

    if columns is None:
        if not rows:
            raise ValueError("markdown_table needs rows or columns to know the header")
        columns = list(rows[0])
    headers = dict(columns) if isinstance(columns, dict) else {c: c for c in columns}
    align = align or {}
    unknown = set(align.values()) - set(ALIGNMENTS)
    if unknown:
        raise ValueError(f"align must be one of {ALIGNMENTS}, got {sorted(unknown)}")
    missing = sorted({key for row in rows for key in headers if key not in row})
    if missing:
        raise KeyError(f"markdown_table: rows lack the columns {missing}")
    # a '|' inside a cell would end the cell early
    cells = [[str(row[key]).replace("|", "\\|") for key in headers] for row in rows]
    frame = pd.DataFrame(cells, columns=list(headers.values()))
    text = frame.to_markdown(index=False, tablefmt="pipe", disable_numparse=True,
                             colalign=[align.get(key, "left") for key in headers])
    return text + "\n"
