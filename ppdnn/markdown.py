"""The one GitHub-Markdown table writer of the package (key space, security, Tables 2-3)."""
from __future__ import annotations


def markdown_table(rows: list[dict], columns: dict | list | None = None,
                   align: dict | None = None) -> str:
    """A GitHub Markdown table, one line per row, ending in a newline.

    ``rows``: dicts; cells are written with ``str`` (format numbers before).
    ``columns``: the keys to show in order, or {key: header}; default: the first row's keys.
    ``align``: {key: "right" | "center"}; other columns are left-aligned.
    """
    if columns is None:
        if not rows:
            raise ValueError("markdown_table needs rows or columns to know the header")
        columns = list(rows[0])
    headers = dict(columns) if isinstance(columns, dict) else {c: c for c in columns}
    marks = {"left": "---", "right": "---:", "center": ":---:"}
    align = align or {}
    unknown = set(align.values()) - set(marks)
    if unknown:
        raise ValueError(f"align must be 'left', 'right' or 'center', got {sorted(unknown)}")
    lines = ["| " + " | ".join(headers.values()) + " |",
             "| " + " | ".join(marks[align.get(key, "left")] for key in headers) + " |"]
    lines += ["| " + " | ".join(str(row[key]) for key in headers) + " |" for row in rows]
    return "\n".join(lines) + "\n"
