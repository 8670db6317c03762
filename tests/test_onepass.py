"""ppdnn.onepass: the one-process runner for a GPU machine, end to end on a CPU with tiny settings."""
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from ppdnn import ciphers, data, onepass, train
from ppdnn.stages import encrypt as encrypt_stage
from ppdnn.stages import tables as tables_stage

ROOT = Path(__file__).resolve().parents[1]
PER_CLASS = {"train": 8, "test": 4}
# width 8, never less: oneDNN's channels_last backward of thin 1x1 convolutions hangs on
# some CPUs (AMD EPYC, AVX2) below 8 channels
TINY = {"recipe": "fast", "device": "cpu", "width": 8, "epochs": 1, "batch_size": 16,
        "train_subset": 64, "test_subset": 40}
RUN_FILES = {train.METRICS, train.RUN_INFO, train.EPOCHS_CSV}
TABLE_FILES = set(tables_stage.OUTPUTS)
# one thread: on a busy 2-core machine OpenMP's spin-waiting made the same run 3-30x slower
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
       "OMP_NUM_THREADS": "1"}


def make_archive(path: Path, seed=0) -> None:
    """A folder-per-class tar.gz of random PNG images (train/<class>/*.png, test/<class>/*.png)."""
    rng = np.random.default_rng(seed)
    with tarfile.open(path, "w:gz") as tar:
        for split, n in PER_CLASS.items():
            for cls in data.CLASSES:
                for i in range(n):
                    buf = io.BytesIO()
                    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="PNG")
                    info = tarfile.TarInfo(f"{split}/{cls}/{i:04d}.png")
                    info.size = buf.tell()
                    buf.seek(0)
                    tar.addfile(info, buf)


def tiny_params() -> dict:
    """The repository's params (runs, ciphers, key_seed) with one tiny CPU profile."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["profiles"] = {"tiny": {"security_images": 10, "train": dict(TINY)}}
    params["profile"] = "tiny"
    params["seeds"] = [0]
    return params


def write_params(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params()))
    return path


def run_module(tmp_path, module: str, *args, timeout=600) -> str:
    cmd = [sys.executable, "-m", module, *map(str, args)]
    try:
        proc = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{module} did not finish in {timeout} s:\n{exc.stdout}\n{exc.stderr}")
    assert proc.returncode == 0, f"{module}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.stdout


def run_cli(tmp_path, *extra):
    return run_module(tmp_path, "ppdnn.onepass", "--params", write_params(tmp_path), "--profile", "tiny",
                      "--out", tmp_path / "out", "--archive", tmp_path / "cifar.tar.gz", "--build",
                      tmp_path / "build", "--probe-seconds", "0", "--any-counts", "--seeds", "0", *extra)


def train_stage_cli(tmp_path, run: dict, out: Path) -> None:
    """One run through the DVC train stage's command, on onepass's cache and encrypted data."""
    build = tmp_path / "build"
    run_module(tmp_path, "ppdnn.stages.train", "--params", write_params(tmp_path), "--profile", "tiny",
               "--run", run["name"], "--cipher", run["cipher"], "--adaptation", run["adaptation"],
               "--augment", run["augment"], "--seed", 0, "--data", build / "data",
               "--encrypted", build / "encrypted" / run["cipher"], "--out", out / "checkpoint",
               "--metrics", out / "metrics")


@pytest.mark.slow
def test_end_to_end_writes_the_results_layout(tmp_path):
    make_archive(tmp_path / "cifar.tar.gz")
    stdout = run_cli(tmp_path)
    out = tmp_path / "out"
    runs = tiny_params()["runs"]
    names = [r["name"] for r in runs]
    assert len(names) == 11
    # exactly the files of results/<profile>/ (the DVC stages' outputs), plus the runner's log and record
    assert {p.name for p in (out / "runs").iterdir()} == {f"{n}-s0" for n in names}
    for run in runs:
        folder = out / "runs" / f"{run['name']}-s0"
        assert {p.name for p in folder.iterdir()} == RUN_FILES
        metrics = json.loads((folder / train.METRICS).read_text())
        assert set(metrics) == set(train.METRIC_KEYS) and metrics["images_per_s"] > 0 and metrics["wall_time_s"] > 0
        info = json.loads((folder / train.RUN_INFO).read_text())
        assert info["run"] == run["name"] and info["profile"] == "tiny" and info["data_source"] == "archive"
        assert info["cipher"] == run["cipher"] and info["device"].startswith("cpu")
        assert info["encrypted_dir"] == str(tmp_path / "build" / "encrypted" / run["cipher"])
        assert info["epochs"] == 1 and info["train_images"] == 64 and info["test_images"] == 40
        assert info["config"]["recipe"] == "fast" and info["config"]["width"] == 8
        assert info["config"]["adaptation"] == run["adaptation"] and info["config"]["augment"] == run["augment"]
        assert not {"runner", "profile_epochs", "key_seed"} & set(info)  # onepass's own facts: onepass.json
    assert {p.name for p in out.iterdir()} == TABLE_FILES | {"runs", "onepass.log", "onepass.json"}
    assert not list(out.rglob("*.pt")) and len(list((tmp_path / "build" / "runs").rglob("checkpoint.pt"))) == 11
    assert {p.name for p in (tmp_path / "build" / "encrypted").iterdir()} == set(tiny_params()["ciphers"])

    t2 = pd.read_csv(out / "table2.csv")
    assert t2["seeds"].tolist() == [1] * 8 and t2["ours_mean"].between(0, 100).all()
    assert (pd.read_csv(out / "table3.csv")[["client_seeds", "cloud_seeds"]] == 1).all().all()
    assert "Profile: tiny; data: archive; device: cpu" in (out / "table2.md").read_text()

    record = json.loads((out / "onepass.json").read_text())
    assert record["probe"]["candidates"]["eager"]["images_per_s"] > 0
    assert "compile" not in record["probe"]["candidates"] and "CPU" in record["probe"]["note"]
    assert record["chosen"]["epochs"] == 1 and record["chosen"]["epochs_cut"] is False
    assert record["chosen"]["compile"] is None and record["gpu"] is None and record["torch"]
    assert [r["name"] for r in record["results"]] == [f"{n}-s0" for n in names]
    assert all(r["wall_s"] > 0 and 0 <= r["test_acc"] <= 1 for r in record["results"])
    assert record["failures"] == [] and record["images_trained"] == 11 * 64
    assert record["settings"] == TINY and record["seeds"] == [0] and record["data"]["train_images"] == 80
    assert set(record["tables"]) == TABLE_FILES

    log = (out / "onepass.log").read_text().splitlines()
    run_lines = [line for line in log if line.startswith("[")]
    assert len(run_lines) == 11 and all("test_acc" in line and " s (" in line for line in run_lines)
    assert log[-1].startswith("summary: 11/11 runs, total wall time")
    assert "summary: 11/11 runs" in stdout and "probe eager:" in stdout

    # the DVC train stage, on the same cache and encrypted data, trains the same run and
    # writes the same schema (a client run: it reads the plain and the encrypted data)
    run = next(r for r in runs if r["augment"] == "client")
    train_stage_cli(tmp_path, run, tmp_path / "dvc")
    ours, theirs = (json.loads((d / train.RUN_INFO).read_text())
                    for d in (out / "runs" / f"{run['name']}-s0", tmp_path / "dvc" / "metrics"))
    assert set(ours) == set(theirs) and ours["fingerprint"] == theirs["fingerprint"]
    del ours["encrypted_dir"], theirs["encrypted_dir"]  # where each runner keeps the data set
    assert ours == theirs
    ours, theirs = (json.loads((d / train.METRICS).read_text())
                    for d in (out / "runs" / f"{run['name']}-s0", tmp_path / "dvc" / "metrics"))
    assert {k: ours[k] for k in ("test_acc", "test_loss", "train_loss_smoothed")} == \
        {k: theirs[k] for k in ("test_acc", "test_loss", "train_loss_smoothed")}

    # the tables again from the run folders alone (a device call stopped before its tables)
    before = {name: (out / name).read_bytes() for name in ("table2.csv", "table2.md", "table3.md", "claims.csv")}
    for name in TABLE_FILES:
        if (out / name).is_dir():  # metrics/, a file per run
            shutil.rmtree(out / name)
        else:
            (out / name).unlink()
    assert set(onepass.tables_only(tiny_params(), "tiny", out)) == TABLE_FILES
    assert {p.name for p in out.iterdir()} >= TABLE_FILES
    assert {name: (out / name).read_bytes() for name in before} == before


def test_data_cache_is_reused_only_for_the_same_archive(tmp_path):
    make_archive(tmp_path / "a.tar.gz", seed=0)
    make_archive(tmp_path / "b.tar.gz", seed=1)
    cache, log = tmp_path / "cache", tmp_path / "log"
    with onepass.logging_to(log):
        first = onepass.prepare_data(cache, tmp_path / "a.tar.gz", None, None)
        first_images = data.load(cache)["train_images"]
        again = onepass.prepare_data(cache, tmp_path / "a.tar.gz", None, None)
        assert log.read_text() == f"data: reusing the cache in {cache}\n"
        assert again["source_sha256"] == first["source_sha256"]
        other = onepass.prepare_data(cache, tmp_path / "b.tar.gz", None, None)
    assert log.read_text().count("\n") == 1 and other["source_sha256"] == data.sha256_of(tmp_path / "b.tar.gz")
    assert not (data.load(cache)["train_images"] == first_images).all()
    assert not onepass.LOGGER.handlers  # the log's handlers are removed on leaving


# ---------------------------------------------------------------- the time budget (no training)
PROBE = {"candidates": {"eager": {"images_per_s": 20_000.0, "compile_s": 0.0, "recompile_s": 0.0},
                        "compile": {"images_per_s": 40_000.0, "compile_s": 20.0, "recompile_s": 1.0}}}
WORK = onepass.Workload(tuple((a, True) for a in ["none"] * 5 + ["pixel"] * 4 + ["block"] * 2),
                        n_train=50_000, n_test=10_000, n_val=0, batch_size=512, drop_last=True)


def fit(seconds_left, probe=PROBE, epochs=15):
    return onepass.fit_budget(probe, WORK, epochs, seconds_left, cuda=True)


def test_budget_prefers_compile_when_its_cost_pays_off():
    chosen = fit(480)
    assert chosen["compile"] is True and chosen["epochs"] == 15 and not chosen["epochs_cut"]
    # 11 x 15 epochs at 40k images/s ~ 210 s, plus 3 first compiles and 8 warm ones
    assert 250 < chosen["estimated_s"] < 480 * onepass.SAFETY


def test_budget_prefers_eager_when_compiling_costs_more_than_it_saves():
    probe = {"candidates": {**PROBE["candidates"],
                            "compile": {"images_per_s": 22_000.0, "compile_s": 60.0, "recompile_s": 30.0}}}
    assert fit(None, probe)["compile"] is False
    assert fit(2000, probe)["compile"] is False


def test_budget_cuts_epochs_not_runs_and_says_why():
    chosen = fit(200)
    assert chosen["epochs_cut"] and 1 <= chosen["epochs"] < 15 and chosen["profile_epochs"] == 15
    assert "15 epochs need about" in chosen["cut_reason"]
    assert chosen["estimated_s"] <= onepass.SAFETY * (200 - onepass.TABLES_S)
    assert fit(5)["epochs"] == 1 and "warning" in fit(5)  # never below one epoch


def test_budget_skips_a_failed_candidate_and_needs_one():
    probe = {"candidates": {"eager": PROBE["candidates"]["eager"], "compile": {"error": "BackendCompilerFailed"}}}
    assert fit(480, probe)["compile"] is False
    with pytest.raises(RuntimeError, match="probe failed"):
        fit(480, {"candidates": {"compile": {"error": "x"}}})


def test_workload_counts_the_plans_jobs_and_the_validation_split():
    from ppdnn import plan
    params = tiny_params()
    params["profiles"]["tiny"]["train"] = {"recipe": "fast", "val_size": 500, "test_subset": 1000}
    the_plan = plan.Plan.from_params(params, "tiny")
    base = train.TrainConfig.from_recipe(**the_plan.train_settings(the_plan.runs[0], 0))
    work = onepass.Workload.of(the_plan.jobs(), base, 50_000, 10_000)
    assert (work.n_train, work.n_test, work.n_val, work.batch_size) == (49_500, 1000, 500, 512)
    # flip TTA is evaluated where the cloud augmented (Augmentation.flip_tta_valid): 8 of 11 runs
    assert len(work.jobs) == 11 and sum(tta for _, tta in work.jobs) == 8


def test_a_cut_replaces_the_epochs_and_the_milestones_that_follow_them():
    paper = train.TrainConfig.from_recipe("paper", epochs=300)
    cut = onepass.with_settings(paper, {"epochs": 300}, epochs=10, device="cpu")
    assert cut.epochs == 10 and cut.milestones == (5.0, 7.5) and cut.device == "cpu"
    assert cut == train.TrainConfig.from_recipe("paper", epochs=10, device="cpu")
    fixed = train.TrainConfig.from_recipe("paper", epochs=300, milestones=[100, 200])
    assert onepass.with_settings(fixed, {"milestones": [100, 200]}, epochs=10).milestones == (100.0, 200.0)


def test_options_refuse_bad_settings():
    with pytest.raises(ValueError, match="compile must be"):
        onepass.Options(out_dir=Path("x"), compile="sometimes")
    with pytest.raises(ValueError, match="budget_s must be"):
        onepass.Options(out_dir=Path("x"), budget_s=float("nan"))


def test_keys_are_the_pipelines(tmp_path):
    """onepass's encrypted data sets and keys are those of the encrypt stage's command."""
    rng = np.random.default_rng(1)
    splits = {s: (rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), np.arange(20) % 10)
              for s in data.SPLITS}
    data.write_cache(splits, tmp_path / "cache", {"source": "test"})
    params_file = write_params(tmp_path)
    names = list(tiny_params()["ciphers"])
    keys = onepass.encrypt_all(tiny_params(), names, tmp_path / "cache", lambda name: tmp_path / "onepass" / name)
    assert list(keys) == names
    for name in names:
        stage_out = tmp_path / "stage" / name
        assert encrypt_stage.main(["--params", str(params_file), "--cipher", name, "--data", str(tmp_path / "cache"),
                                   "--out", str(stage_out)]) == 0
        assert ciphers.load(stage_out / "key.json").fingerprint == keys[name].fingerprint
        for split, (images, _) in splits.items():
            ours, theirs = tmp_path / "onepass" / name / f"{split}.npz", stage_out / f"{split}.npz"
            with np.load(ours) as ours, np.load(theirs) as theirs:
                assert (ours["images"] == theirs["images"]).all() and (ours["labels"] == theirs["labels"]).all()
                assert (ours["images"] == images).all() == (name == "plain"), (name, split)


def test_dynamo_keeps_static_shapes_and_enough_cache_entries():
    import torch._dynamo
    cfg = torch._dynamo.config
    saved = {k: getattr(cfg, k) for k in dir(cfg) if k.endswith("_limit") or k == "automatic_dynamic_shapes"}
    try:
        done = onepass.configure_dynamo()
        assert done["automatic_dynamic_shapes"] is False
        limits = {k: v for k, v in done.items() if k.endswith("limit")}
        assert len(limits) == 2 and all(v >= 64 for v in limits.values())
    finally:
        for k, v in saved.items():
            setattr(cfg, k, v)


def test_imports_neither_dvc_nor_papermill(tmp_path):
    """The lent GPU machine has neither."""
    code = ("import sys, ppdnn.onepass, ppdnn.stages.tables; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'dvc', 'papermill', 'nbclient', 'nbformat'}))")
    assert run_module(tmp_path, "ppdnn.onepass", "--help").startswith("usage: python -m ppdnn.onepass")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


@pytest.fixture
def one_thread():
    """One torch thread for in-process training (see ENV), restored afterwards."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_failed_run_is_recorded_and_the_call_fails_at_the_end(tmp_path, one_thread):
    make_archive(tmp_path / "cifar.tar.gz")
    params = tiny_params()
    params["runs"] = [{"name": "broken", "cipher": "pixel", "adaptation": "no-such-network", "augment": "cloud"}]
    options = onepass.Options(out_dir=tmp_path / "out", archive=tmp_path / "cifar.tar.gz", probe_seconds=0,
                              build_dir=tmp_path / "build", any_counts=True)
    with pytest.raises(onepass.RunsFailed, match="1 run\\(s\\) failed: broken-s0"):
        onepass.run_all(params, "tiny", options)
    record = json.loads((tmp_path / "out" / "onepass.json").read_text())
    assert record["failures"] == ["broken-s0"] and "no-such-network" in record["results"][0]["error"]
    assert "FAILED" in (tmp_path / "out" / "onepass.log").read_text() and "tables" not in record
