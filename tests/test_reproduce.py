"""ppdnn.reproduce: which stages a target needs (on a toy graph of DVC's shape)."""
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pytest

from ppdnn import reproduce


@dataclass(frozen=True)
class Stage:
    addressing: str


def pipeline() -> nx.DiGraph:
    """data <- encrypt@a, encrypt@b <- train@r-0, train@r-1 <- tables; data <- security."""
    g = nx.DiGraph()  # DVC's edges point from a stage to what it depends on
    for enc in ("encrypt@a", "encrypt@b"):
        g.add_edge(Stage(enc), Stage("data"))
    g.add_edge(Stage("train@r-0"), Stage("encrypt@a"))
    g.add_edge(Stage("train@r-1"), Stage("encrypt@b"))
    for t in ("train@r-0", "train@r-1"):
        g.add_edge(Stage("tables"), Stage(t))
    g.add_edge(Stage("security"), Stage("data"))
    return g


def names(stages) -> set[str]:
    return {s.addressing for s in stages}


def test_a_target_needs_its_upstream_only():
    g = pipeline()
    assert names(reproduce.needed(g, ["tables"])) == {"tables", "train@r-0", "train@r-1", "encrypt@a",
                                                       "encrypt@b", "data"}
    assert names(reproduce.needed(g, ["train@r-1"])) == {"train@r-1", "encrypt@b", "data"}
    assert names(reproduce.needed(g, ["train"])) == {"train@r-0", "train@r-1", "encrypt@a", "encrypt@b", "data"}
    assert names(reproduce.needed(g, [])) == names(g.nodes)  # no target: everything


def test_an_unknown_target_is_one_clear_error(capsys, monkeypatch):
    with pytest.raises(ValueError, match="unknown stage 'tabels'"):
        reproduce.needed(pipeline(), ["tabels"])
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the project's own dvc.yaml, nothing run
    assert reproduce.main(["tabels"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ppdnn.reproduce: error: unknown stage 'tabels': dvc.yaml has no such stage"]
    with pytest.raises(SystemExit):
        reproduce.main(["--jobs", "0"])
    assert "--jobs must be a positive int" in capsys.readouterr().err


def test_on_the_real_pipeline_the_tables_need_every_train_stage_and_no_security():
    from dvc.repo import Repo

    with Repo(str(Path(__file__).resolve().parents[1])) as repo:  # reads dvc.yaml; runs nothing
        graph = repo.index.graph
        trains = {s.addressing for s in graph.nodes if s.addressing.startswith("train@")}
        wanted = names(reproduce.needed(graph, ["tables"]))
    assert trains and trains <= wanted and "data" in wanted
    assert not wanted & {"security", "learned_attacks", "notebooks", "figures", "key_space"}
