"""The DVC pipeline end to end in the smoke profile, in a throw-away copy of the working tree."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ppdnn import pipeline, tables

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = (ROOT / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz").resolve()


def test_params_define_the_eleven_runs_and_every_profile():
    params = pipeline.read_params(ROOT / "params.yaml")
    names = [r["name"] for r in params["runs"]]
    assert len(names) == len(set(names)) == 11
    table_runs = {r[1] for r in tables.TABLE2_ROWS} | {r[1] for r in tables.TABLE3_ROWS} | {r[3] for r in tables.TABLE3_ROWS}
    assert table_runs == set(names)
    assert all(r["cipher"] in params["ciphers"] for r in params["runs"])
    for profile in ("smoke", "quick", "fast", "paper"):
        assert set(pipeline.profile_settings(params, profile)) == set(pipeline.PROFILE_KEYS)


def test_train_parameters_resolve_the_profile_and_keep_types():
    params = pipeline.read_params(ROOT / "params.yaml")
    nb = pipeline.train_parameters(params, "quick", "step23_cloud", "pixel_shuffle", "none", "cloud", 2)
    assert nb["shuffle"] is True and nb["scheme"] == "pixel" and nb["seed"] == 2
    assert nb["width"] == params["profiles"]["quick"]["width"]
    assert nb["metrics_dir"] == "results/quick/runs/step23_cloud-s2"
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        pipeline.train_parameters(params, "huge", "plain", "plain", "none", "cloud", 0)
    with pytest.raises(ValueError, match="unknown cipher configuration 'rot13'"):
        pipeline.train_parameters(params, "quick", "plain", "rot13", "none", "cloud", 0)
    params["profiles"]["quick"]["widht"] = 3
    with pytest.raises(ValueError, match="unknown keys \\['widht'\\]"):
        pipeline.profile_settings(params, "quick")


def test_gpu_profiles_refuse_to_start_without_cuda(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        pipeline.require_device("cuda", "fast")
    pipeline.require_device("cpu", "quick")  # no error


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


def run(cmd, cwd, env):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.mark.slow
@pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"real CIFAR-10 JPEG archive not present at {ARCHIVE}")
def test_smoke_pipeline_end_to_end(tmp_path):
    # Copy the working tree (tracked and untracked, not ignored) so the real repo is untouched.
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    work = tmp_path / "repo"
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, work / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@localhost",
           "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@localhost"}
    run(["git", "init", "-q"], work, env)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["profile"] = "smoke"
    params["data"]["archive"] = str(ARCHIVE)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.rmtree(work / "results" / "smoke", ignore_errors=True)

    run(["dvc", "repro", "--quiet"], work, env)

    results = work / "results" / "smoke"
    t2 = pd.read_csv(results / "table2.csv")
    t3 = pd.read_csv(results / "table3.csv")
    assert len(t2) == 8 and len(t3) == 3
    assert t2["ours_mean"].between(0, 100).all() and (t2["seeds"] == 1).all()
    assert (t3["client_seeds"] == 1).all() and (t3["cloud_seeds"] == 1).all()
    metrics = [json.loads(p.read_text()) for p in results.glob("runs/*/metrics.json")]
    assert len(metrics) == 11
    assert {m["data_source"] for m in metrics} == {"archive"}
    assert {m["profile"] for m in metrics} == {"smoke"}
    assert {m["run"] for m in metrics} == {r["name"] for r in params["runs"]}
    for name in ("tables.png", "curves.html", "security.csv", "security.md", "security.png"):
        assert (results / name).stat().st_size > 0, name
    assert "<script" not in (results / "curves.html").read_text()  # offline, self-contained
    assert (work / "results" / "key_space.csv").is_file()
    assert list((work / "results" / "figures").glob("*.png"))

    # Nothing changed: nothing to do. One parameter changed: only its stage is stale.
    status = json.loads(run(["dvc", "status", "--json"], work, env) or "{}")
    assert status == {}, status
    params["profiles"]["smoke"]["security_images"] = 100
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(run(["dvc", "status", "--json"], work, env))
    assert set(status) == {"security"}, status
