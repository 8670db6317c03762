"""The README's tables and verdicts are the committed results files, never typed: each
included block equals its file (`python -m ppdnn.readme` copies them in)."""
import re
from pathlib import Path

from ppdnn import readme

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_shows_the_committed_results_files_verbatim():
    text = (ROOT / "README.md").read_text()
    sources = readme.included(text)
    assert {"results/quick/table2.md", "results/quick/table3.md", "results/quick/claims.md",
            "results/quick/security.md", "results/key_space.md"} <= set(sources)
    for source in sources:
        start, end = readme.readme_block(text, source)
        assert text[start:end] == (ROOT / source).read_text(), \
            f"README block of {source} is stale: run `python -m ppdnn.readme`"


def test_update_readme_replaces_each_block_with_its_file(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "a.md").write_text("| new |\n")
    path = tmp_path / "README.md"
    path.write_text("intro\n<!-- include: r/a.md -->\n| old |\n<!-- end include -->\nend\n")
    assert readme.update_readme(path, root=tmp_path) == ["r/a.md"]
    assert path.read_text() == "intro\n<!-- include: r/a.md -->\n| new |\n<!-- end include -->\nend\n"


def test_no_placeholder_is_left_in_the_readme():
    assert not re.findall(r"@@\w+@@", (ROOT / "README.md").read_text())
