"""The DVC pipeline's caching: each stage depends on exactly the code it runs, and in the
smoke pipeline's throw-away copy of the tree an edit makes stale exactly the stages it
can change. Then a new scheme, added as one file plus its params.yaml entry, runs end to
end and appears in every table."""
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from import_closure import closure, notebook_closure
from toy_scheme import TOY_SOURCE

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = (ROOT / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz").resolve()
# Dependencies a stage lists beyond its import closure, and why: a scheme is found by name
# (importlib), so a stage lists the one scheme file it uses, or the whole folder when it
# enumerates every scheme.
SCHEME_DEPS = {"ppdnn/schemes", "ppdnn/schemes/__init__.py", "ppdnn/schemes/${item.scheme}.py"}


def stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def stage_module(stage: dict) -> str:
    match = re.match(r"python -m (ppdnn\.stages\.\w+) ", " ".join(stage["cmd"].split()) + " ")
    assert match, f"a stage runs `python -m ppdnn.stages.<stage>`, not {stage['cmd']!r}"
    return match.group(1)


@pytest.mark.parametrize("name", list(stages()))
def test_every_stage_depends_on_exactly_the_code_it_runs(name):
    stage = stages()[name]
    stage = stage.get("do", stage)
    listed = {d for d in stage["deps"] if d.startswith("ppdnn")}
    code = {str(p) for p in closure(stage_module(stage))}
    for notebook in (d for d in stage["deps"] if d.endswith(".ipynb")):  # the code the notebooks run
        code |= {str(p) for p in notebook_closure(ROOT / notebook)}
    assert not (missing := sorted(code - listed)), f"dvc.yaml stage {name} runs but does not list {missing}"
    assert not (extra := sorted(listed - code - SCHEME_DEPS)), f"dvc.yaml stage {name} lists {extra}, which it does not run"
    assert (ROOT / "ppdnn" / "__init__.py").read_text().count("import") <= 1  # the package imports nothing


def test_the_closure_follows_relative_imports_and_parent_packages():
    files = {str(p) for p in closure("ppdnn.stages.train")}
    assert {"ppdnn/train.py", "ppdnn/ciphers/base.py", "ppdnn/ciphers/__init__.py", "ppdnn/__init__.py",
            "ppdnn/stages/__init__.py", "ppdnn/encrypted.py"} <= files
    assert not {"ppdnn/cli.py", "ppdnn/tables.py", "ppdnn/claims.py", "ppdnn/gpus.py"} & files
    assert not any(f.startswith("ppdnn/schemes/") for f in files)  # found by name at run time


# ---------------------------------------------------------------- the smoke pipeline
def run(cmd, cwd, env, timeout=1200):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def stale(work, env) -> set[str]:
    return set(json.loads(run(["dvc", "status", "--json"], work, env) or "{}"))


def copy_tree(work: Path) -> None:
    """The working tree (tracked and untracked, not ignored) without results: a throw-away copy."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file() and not name.startswith("results/"):
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, work / name)


class Edit:
    """Append a line to a file for one check; restore it byte for byte afterwards."""

    def __init__(self, path: Path, line: str = "# an edit\n"):
        self.path, self.line, self.saved = path, line, path.read_bytes()

    def __enter__(self):
        self.path.write_bytes(self.saved + self.line.encode())

    def __exit__(self, *exc):
        self.path.write_bytes(self.saved)


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"real CIFAR-10 JPEG archive not present at {ARCHIVE}")
def test_the_cache_survives_edits_and_a_new_scheme_runs_end_to_end(tmp_path):
    work = tmp_path / "repo"
    copy_tree(work)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(work), "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1"}
    run(["git", "init", "-q"], work, env)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params.update(profile="smoke", seeds=[0])
    params["data"]["archive"] = str(ARCHIVE)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "repro", "--quiet"], work, env)
    assert stale(work, env) == set()
    n_train = len(params["runs"])
    trains = {f"train@run{i}-0" for i in range(n_train)}

    with Edit(work / "ppdnn" / "cli.py"):  # code no stage runs
        assert stale(work, env) == set()
    with Edit(work / "ppdnn" / "tables.py"):
        assert stale(work, env) == {"tables", "notebooks"}  # the tables notebook shows them
    with Edit(work / "ppdnn" / "schemes" / "pixel.py"):  # its data sets and the stages that enumerate schemes
        assert stale(work, env) == {"encrypt@pixel", "encrypt@pixel_shuffle", "figures", "key_space", "security",
                                    "learned_attacks", "notebooks"}
    with Edit(work / "ppdnn" / "train.py"):
        # the train notebook's example run; the learned attacks share its channels_last guard
        assert stale(work, env) == trains | {"notebooks", "learned_attacks"}
    assert stale(work, env) == set()

    # A researcher's own scheme: one file in ppdnn/schemes/, its params.yaml entry and a run.
    (work / "ppdnn" / "schemes" / "toy.py").write_text(TOY_SOURCE)
    params["ciphers"]["toy"] = {"scheme": "toy"}
    params["runs"].append({"name": "toy_cloud", "cipher": "toy", "adaptation": "none", "augment": "cloud"})
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert stale(work, env) == {"encrypt@toy", f"train@run{n_train}-0", "tables", "figures", "key_space", "security",
                                "learned_attacks", "notebooks"}
    run(["dvc", "repro", "--quiet"], work, env)

    results = work / "results" / "smoke"
    t2, t3 = pd.read_csv(results / "table2.csv"), pd.read_csv(results / "table3.csv")
    assert len(t2) == 8 and len(t3) == 3 and t2["ours_mean"].between(0, 100).all()
    infos = [json.loads(p.read_text()) for p in results.glob("runs/*/run.json")]
    assert len(infos) == n_train + 1 and {i["data_source"] for i in infos} == {"archive"}
    assert {i["run"] for i in infos} == {r["name"] for r in params["runs"]}
    assert "toy" in set(pd.read_csv(results / "security.csv")["configuration"])
    assert "toy" in set(pd.read_csv(results / "security_dataset.csv")["configuration"])
    assert {"toy"} < set(pd.read_csv(results / "security_learned.csv")["configuration"])
    assert "toy" in (work / "results" / "key_space.csv").read_text()
    for name in ("tables.png", "curves.html", "claims.md", "security.md", "security.png"):
        assert (results / name).stat().st_size > 0, name
    assert "<script" not in (results / "curves.html").read_text()  # offline, self-contained
    assert list((work / "results" / "figures").glob("*.png"))
    assert {p.name for p in (results / "notebooks").glob("*.ipynb")} == {
        "tables.ipynb", "security.ipynb", "encryption_figures.ipynb", "key_space.ipynb", "train.ipynb"}
    assert stale(work, env) == set()
    params["profiles"]["smoke"]["security_images"] = 100  # one parameter: only its stage
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert stale(work, env) == {"security"}  # (the notebooks stage follows once security reruns)
    params["profiles"]["smoke"]["security_images"] = 200
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert stale(work, env) == set()

    # DVC's own commands, as the README gives them: a line per run within 120 columns, and
    # an experiment that records its metrics (`dvc exp show` has a number, not "!").
    shown = run(["dvc", "metrics", "show"], work, {**env, "COLUMNS": "120"})
    assert "results/smoke/metrics/plain.json" in shown and max(map(len, shown.splitlines())) <= 120
    git = {**env, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    run(["git", "add", "-A"], work, git)
    run(["git", "commit", "-qm", "smoke"], work, git)
    run(["dvc", "exp", "run", "--quiet", "-S", "learned_attacks.yaml:smoke.test_images=16"], work, git)
    table = pd.read_csv(io.StringIO(run(["dvc", "exp", "show", "--csv"], work, git)))
    accuracy = table["results/smoke/metrics/plain.json:test_acc"]
    assert len(table) >= 3 and pd.to_numeric(accuracy, errors="coerce").notna().all()  # workspace, commit, exp
