"""``python -m ppdnn.readme``: copy the results files the README includes into it.

The README's tables and verdicts are never typed: each block between
``<!-- include: results/quick/claims_summary.md -->`` and ``<!-- end include -->`` is the
file it names, and ``tests/test_readme.py`` fails when a block and its file differ.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from .errors import run_main
from .files import atomic_write


def readme_block(text: str, source: str) -> tuple[int, int]:
    """Start and end offsets of the content between ``<!-- include: source -->`` and
    ``<!-- end include -->`` in ``text``; ValueError if the markers are missing."""
    start_marker, end_marker = f"<!-- include: {source} -->\n", "<!-- end include -->"
    start = text.find(start_marker)
    if start < 0:
        raise ValueError(f"README has no '{start_marker.strip()}' marker")
    start += len(start_marker)
    end = text.find(end_marker, start)
    if end < 0:
        raise ValueError(f"README: '{start_marker.strip()}' is not closed by '{end_marker}'")
    return start, end


def update_readme(readme, root=".") -> list[str]:
    """Copy every included results file (``<!-- include: results/quick/claims.md -->``) into
    the README, so that its tables are generated, never typed. Returns the files included."""
    readme, root = Path(readme), Path(root)
    text = readme.read_text()
    done = []
    for source in sorted(set(included(text))):
        start, end = readme_block(text, source)
        text = text[:start] + (root / source).read_text() + text[end:]
        done.append(source)
    atomic_write(readme, lambda f: f.write(text.encode()))
    return done


def included(text: str) -> list[str]:
    """The results files a README includes, in order."""
    return re.findall(r"<!-- include: (\S+) -->", text)


def main(argv=None) -> int:
    readme = (argv or sys.argv[1:] or ["README.md"])[0]

    def body():
        for source in update_readme(readme):
            print(f"{readme}: included {source}")

    return run_main("ppdnn.readme", body)


if __name__ == "__main__":
    sys.exit(main())
