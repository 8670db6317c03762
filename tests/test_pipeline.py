"""params.yaml, the pipeline's stages and their errors, and the DVC pipeline end to end
(smoke profile, with a new scheme added as one file) in a throw-away copy of the tree."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ppdnn import data, pipeline, tables, train
from toy_scheme import TOY_SOURCE

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = (ROOT / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz").resolve()


def params():
    return pipeline.read_params(ROOT / "params.yaml")


# ---------------------------------------------------------------- params.yaml
def test_params_define_the_eleven_runs_and_every_profile():
    p = params()
    names = [r["name"] for r in p["runs"]]
    assert len(names) == len(set(names)) == 11
    table_runs = {r[1] for r in tables.TABLE2_ROWS} | {r[1] for r in tables.TABLE3_ROWS} | {r[3] for r in tables.TABLE3_ROWS}
    assert table_runs == set(names)
    assert set(p["profiles"]) == {"smoke", "quick", "fast", "paper"}
    assert len(p["seeds"]) >= 3  # every row of the tables with at least three training seeds


def test_a_profile_resolves_into_one_training_configuration():
    p = params()
    config = pipeline.train_config(p, "quick", adaptation="pixel", augment="client", seed=2)
    assert isinstance(config, train.TrainConfig)
    assert config.recipe == p["profiles"]["quick"]["train"]["recipe"]
    assert config.width == p["profiles"]["quick"]["train"]["width"]
    assert (config.adaptation, config.augment, config.seed) == ("pixel", "client", 2)
    paper = pipeline.train_config(p, "paper", adaptation="none", augment="cloud", seed=0)
    assert paper == train.TrainConfig(epochs=300, width=64, train_subset=50000, test_subset=10000,
                                      device="cuda")  # exactly Sec. 4.1


@pytest.mark.parametrize("edit,message", [
    (lambda p: p.pop("runs"), r"missing keys \['runs'\]"),
    (lambda p: p.update(sedes=[0]), r"unknown keys \['sedes'\]"),
    (lambda p: p.update(seeds=[0, 0]), "seeds must be a list of distinct"),
    (lambda p: p.update(profile="huge"), "profile 'huge' is not defined"),
    (lambda p: p["profiles"]["quick"]["train"].update(widht=3), r"unknown TrainConfig key\(s\) 'widht'"),
    (lambda p: p["profiles"]["quick"]["train"].update(recipe="slow"), "unknown recipe 'slow'"),
    (lambda p: p["profiles"]["quick"]["train"].update(epochs=0), "epochs must be a positive int"),
    (lambda p: p["profiles"]["quick"].pop("security_images"), "needs exactly the keys"),
    (lambda p: p["ciphers"].append("rot13"), r"unknown cipher configurations \['rot13'\]"),
    (lambda p: p["runs"][0].update(adaptation="big"), "adaptation 'big' is not one of"),
    (lambda p: p["runs"][0].update(augment="server"), "augment 'server' is not one of"),
    (lambda p: p["runs"][0].update(cipher="etc_shuffle"), "cipher 'etc_shuffle' is not under ciphers"),
])
def test_every_mistake_in_params_yaml_is_named(edit, message):
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    edit(p)
    with pytest.raises(pipeline.ParamsError, match=message):
        pipeline.check_params(p)


def test_missing_or_malformed_params_files_are_one_line(tmp_path, capsys):
    bad = tmp_path / "params.yaml"
    bad.write_text("profile: [unclosed\n")
    for path, message in ((tmp_path / "none.yaml", "not found"), (bad, "not valid YAML"),
                          (tmp_path, "is a folder")):
        code = pipeline.main(["--params", str(path), "tables", "--profile", "quick", "--runs", "r",
                              "--out", str(tmp_path / "o"), "--executed", str(tmp_path / "t.ipynb")])
        err = capsys.readouterr().err
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err


def test_gpu_profiles_refuse_to_start_without_cuda(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(pipeline.ParamsError, match="needs a CUDA GPU"):
        pipeline.require_device("cuda", "fast")
    pipeline.require_device("cpu", "quick")  # no error


def test_bad_train_arguments_fail_before_the_notebook_starts(tmp_path, capsys, monkeypatch):
    started = []
    monkeypatch.setattr(pipeline, "run_notebook", lambda *a: started.append(a))
    base = ["train", "--profile", "smoke", "--run", "plain", "--cipher", "plain", "--adaptation", "none",
            "--augment", "cloud", "--seed", "0", "--data", str(tmp_path / "data"),
            "--encrypted", str(tmp_path / "enc"), "--out", str(tmp_path / "out"), "--metrics", str(tmp_path / "m")]
    cases = [({"--adaptation": "huge"}, "unknown adaptation 'huge'"),
             ({"--augment": "server"}, "unknown augment 'server'"),
             ({"--profile": "slow"}, "unknown profile 'slow'"),
             ({"--cipher": "rot13"}, "unknown cipher configuration 'rot13'"),
             ({}, "no CIFAR-10 cache")]
    for change, message in cases:
        argv = list(base)
        for flag, value in change.items():
            argv[argv.index(flag) + 1] = value
        assert pipeline.main(["--params", str(ROOT / "params.yaml"), *argv]) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert started == []


def test_every_stage_depends_on_the_whole_package_and_names_its_paths():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        stage = stage.get("do", stage)
        assert "ppdnn" in stage["deps"], f"stage {name} must depend on the package as a whole"
        assert stage["cmd"].startswith("python -m ppdnn.pipeline "), name
    dvcignore = (ROOT / ".dvcignore").read_text()
    assert "__pycache__/" in dvcignore  # byte code must not change the package's hash


# ---------------------------------------------------------------- the encrypt stage
def tiny_cache(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    splits = {s: (rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), np.arange(20) % 10)
              for s in data.SPLITS}
    data.write_cache(splits, folder, {"source": "synthetic"})
    return folder


def test_the_encrypt_stage_replaces_only_what_it_wrote(tmp_path, capsys):
    cache = tiny_cache(tmp_path / "data")
    out = tmp_path / "enc"
    argv = ["encrypt", "--data", str(cache), "--out", str(out), "--cipher", "pixel", "--key-seed", "0"]
    assert pipeline.main(argv) == 0
    first = (out / "key.json").read_bytes()
    assert pipeline.main(argv) == 0  # its own output: replaced, with the same key
    assert (out / "key.json").read_bytes() == first
    from ppdnn import ciphers
    with np.load(out / "train.npz") as npz:
        assert str(npz["key_fingerprint"]) == ciphers.load(out / "key.json").fingerprint
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.tex").write_text("years of work")
    for target, message in ((user, "was not written by ppdnn"), (cache, "would overwrite the plain data"),
                            (cache / "sub", "would overwrite the plain data")):
        argv[argv.index("--out") + 1] = str(target)
        assert pipeline.main(argv) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert (user / "thesis.tex").read_text() == "years of work" and sorted(p.name for p in user.iterdir()) == ["thesis.tex"]
    assert data.load(cache)["train_images"].shape == (20, 32, 32, 3)


def test_encrypted_data_from_another_key_is_refused(tmp_path):
    from ppdnn import ciphers, experiment
    cache = tiny_cache(tmp_path / "data")
    for name in ("pixel", "pixel_shuffle"):
        assert pipeline.main(["encrypt", "--data", str(cache), "--out", str(tmp_path / name),
                              "--cipher", name, "--key-seed", "0"]) == 0
    assert experiment.load_encrypted(tmp_path / "pixel")["cipher"].fingerprint == \
        ciphers.make_for_configuration("pixel", 0).fingerprint
    shutil.copy(tmp_path / "pixel_shuffle" / "key.json", tmp_path / "pixel" / "key.json")
    with pytest.raises(ValueError, match="was not encrypted with"):
        experiment.load_encrypted(tmp_path / "pixel")


# ---------------------------------------------------------------- tables
def test_tables_compare_with_the_paper(tmp_path):
    for run, acc in [("plain", 0.5), ("step2_cloud", 0.4), ("step2_client", 0.45)]:
        for seed, delta in [(0, 0.0), (1, 0.02)]:
            d = tmp_path / f"{run}-s{seed}"
            d.mkdir()
            (d / "metrics.json").write_text(json.dumps({
                "test_acc": acc + delta, "seed": seed, "device": "cpu", "wall_time_s": 10.0,
                "images_per_s": 100.0, "run": run, "profile": "smoke", "data_source": "archive"}))
    assert set(tables.collect_metrics(tmp_path, seeds=[0])["seed"]) == {0}  # stale seeds left out
    assert set(tables.collect_metrics(tmp_path, runs=["plain"])["run"]) == {"plain"}
    runs = tables.collect_metrics(tmp_path)
    t2, t3 = tables.make_tables(runs)
    plain = t2.set_index("run").loc["plain"]
    assert plain["ours_mean"] == 51.0 and plain["ours_std"] == round(2 ** 0.5, 2) and plain["seeds"] == 2
    assert plain["paper"] == 92.98 and plain["difference"] == round(51.0 - 92.98, 2)
    assert t2.set_index("run").loc["etc_cloud", "seeds"] == 0
    row = t3.iloc[0]
    assert (row["client_ours_mean"], row["cloud_ours_mean"]) == (46.0, 41.0)
    md2, md3 = tables.tables_markdown(t2, t3, tables.provenance(runs))
    assert "| Plain image | 51.00 ± 1.41 | 92.98 | -41.98 |" in md2
    assert "not run" in md2 and "Profile: smoke; data: archive; device: cpu; seeds: [0, 1]" in md3


# ---------------------------------------------------------------- end to end
def run(cmd, cwd, env):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=840)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"real CIFAR-10 JPEG archive not present at {ARCHIVE}")
def test_smoke_pipeline_end_to_end_with_a_new_scheme_in_one_file(tmp_path):
    # Copy the working tree (tracked and untracked, not ignored) so the real repo is untouched.
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    work = tmp_path / "repo"
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, work / name)
    # A researcher's own scheme: one file in ppdnn/ciphers/ and one entry in params.yaml
    # (plus a run that uses it).
    (work / "ppdnn" / "ciphers" / "toy.py").write_text(TOY_SOURCE)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(work), "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "ci",
           "GIT_AUTHOR_EMAIL": "ci@localhost", "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@localhost"}
    run(["git", "init", "-q"], work, env)
    p = yaml.safe_load((work / "params.yaml").read_text())
    p.update(profile="smoke", seeds=[0])
    p["data"]["archive"] = str(ARCHIVE)
    p["ciphers"].append("toy")
    p["runs"].append({"name": "toy_cloud", "cipher": "toy", "adaptation": "none", "augment": "cloud"})
    (work / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    shutil.rmtree(work / "results" / "smoke", ignore_errors=True)

    run(["dvc", "repro", "--quiet"], work, env)

    results = work / "results" / "smoke"
    t2 = pd.read_csv(results / "table2.csv")
    t3 = pd.read_csv(results / "table3.csv")
    assert len(t2) == 8 and len(t3) == 3
    assert t2["ours_mean"].between(0, 100).all() and (t2["seeds"] == 1).all()
    assert (t3["client_seeds"] == 1).all() and (t3["cloud_seeds"] == 1).all()
    metrics = [json.loads(p.read_text()) for p in results.glob("runs/*/metrics.json")]
    assert len(metrics) == 12
    assert {m["data_source"] for m in metrics} == {"archive"}
    assert {m["profile"] for m in metrics} == {"smoke"}
    assert {m["run"] for m in metrics} == {r["name"] for r in p["runs"]}
    claims = pd.read_csv(results / "claims.csv")
    assert set(claims["verdict"]) == {"inconclusive (1 seed)"}  # one seed decides nothing
    for name in ("tables.png", "curves.html", "security.csv", "security.md", "security.png", "claims.md"):
        assert (results / name).stat().st_size > 0, name
    assert "<script" not in (results / "curves.html").read_text()  # offline, self-contained
    assert "toy" in pd.read_csv(results / "security.csv")["scheme"].tolist()
    assert "toy" in (work / "results" / "key_space.csv").read_text()
    assert list((work / "results" / "figures").glob("*.png"))

    # Nothing changed: nothing to do. One parameter changed: only its stage is stale.
    status = json.loads(run(["dvc", "status", "--json"], work, env) or "{}")
    assert status == {}, status
    p["profiles"]["smoke"]["security_images"] = 100
    (work / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    status = json.loads(run(["dvc", "status", "--json"], work, env))
    assert set(status) == {"security"}, status


def test_the_readme_shows_the_committed_results_files_verbatim():
    """The README's tables are copied from results/ by `python -m ppdnn.pipeline readme`,
    never typed: each included block must equal its file."""
    import re
    text = (ROOT / "README.md").read_text()
    sources = re.findall(r"<!-- include: (\S+) -->", text)
    assert {"results/quick/table2.md", "results/quick/table3.md", "results/quick/claims.md"} <= set(sources)
    for source in sources:
        start, end = tables.readme_block(text, source)
        assert text[start:end] == (ROOT / source).read_text(), f"README block of {source} is stale: " \
            "run `python -m ppdnn.pipeline readme`"
