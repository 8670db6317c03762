"""ppdnn.onepass: the one-process runner for a GPU machine, end to end on a CPU with tiny settings."""
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from ppdnn import ciphers, data, onepass

ROOT = Path(__file__).resolve().parents[1]
PER_CLASS = {"train": 8, "test": 4}
# width 8, never less: oneDNN's channels_last backward of thin 1x1 convolutions hangs on
# some CPUs (AMD EPYC, AVX2) below 8 channels
TINY = {"recipe": "fast", "device": "cpu", "width": 8, "epochs": 1, "batch_size": 16,
        "train_subset": 64, "test_subset": 40}
RUN_FILES = {"metrics.json", "epochs.csv", "learning_curves.png"}
TABLE_FILES = {"table2.csv", "table2.md", "table3.csv", "table3.md", "tables.png", "curves.html"}


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


def run_cli(tmp_path, *extra, timeout=600):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params()))
    cmd = [sys.executable, "-m", "ppdnn.onepass", "--params", str(params), "--profile", "tiny",
           "--out", str(tmp_path / "out"), "--archive", str(tmp_path / "cifar.tar.gz"),
           "--build", str(tmp_path / "build"), "--probe-seconds", "0", "--any-counts", *extra]
    # one thread: on a busy 2-core machine OpenMP's spin-waiting made the same run 3-30x slower
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"ppdnn.onepass did not finish in {timeout} s:\n{exc.stdout}\n{exc.stderr}")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.mark.slow
def test_end_to_end_writes_the_results_layout(tmp_path):
    make_archive(tmp_path / "cifar.tar.gz")
    stdout = run_cli(tmp_path)
    out = tmp_path / "out"
    names = [r["name"] for r in tiny_params()["runs"]]
    assert len(names) == 11
    # exactly the files of results/<profile>/, plus the runner's log and record
    assert {p.name for p in (out / "runs").iterdir()} == {f"{n}-s0" for n in names}
    for name in names:
        assert {p.name for p in (out / "runs" / f"{name}-s0").iterdir()} == RUN_FILES
        metrics = json.loads((out / "runs" / f"{name}-s0" / "metrics.json").read_text())
        assert metrics["run"] == name and metrics["profile"] == "tiny" and metrics["data_source"] == "archive"
        assert metrics["device"].startswith("cpu") and metrics["images_per_s"] > 0 and metrics["wall_time_s"] > 0
        assert metrics["epochs"] == 1 and metrics["train_images"] == 64 and metrics["test_images"] == 40
        assert metrics["cipher"] == next(r["cipher"] for r in tiny_params()["runs"] if r["name"] == name)
        assert metrics["config"]["recipe"] == "fast" and metrics["config"]["width"] == 8
    claims = {"claims.csv", "claims.md"}
    assert {p.name for p in out.iterdir()} == TABLE_FILES | claims | {"runs", "onepass.log", "onepass.json"}
    assert not list(out.rglob("*.pt")) and list((tmp_path / "build" / "runs").rglob("checkpoint.pt"))

    t2 = pd.read_csv(out / "table2.csv")
    assert t2["seeds"].tolist() == [1] * 8 and t2["ours_mean"].between(0, 100).all()
    assert (pd.read_csv(out / "table3.csv")[["client_seeds", "cloud_seeds"]] == 1).all().all()
    md2 = (out / "table2.md").read_text()
    assert "Profile: tiny; data: archive; device: cpu" in md2 and "ppdnn.onepass" in md2

    record = json.loads((out / "onepass.json").read_text())
    assert record["probe"]["candidates"]["eager"]["images_per_s"] > 0
    assert "compile" not in record["probe"]["candidates"] and "CPU" in record["probe"]["note"]
    assert record["chosen"]["epochs"] == 1 and record["chosen"]["epochs_cut"] is False
    assert record["chosen"]["compile"] is None and record["gpu"] is None and record["torch"]
    assert [r["name"] for r in record["results"]] == [f"{n}-s0" for n in names]
    assert all(r["wall_s"] > 0 and 0 <= r["test_acc"] <= 1 for r in record["results"])
    assert record["failures"] == [] and record["images_trained"] == 11 * 64
    assert record["recipe"] == "fast" and record["settings"]["width"] == 8

    log = (out / "onepass.log").read_text().splitlines()
    run_lines = [line for line in log if line.startswith("[")]
    assert len(run_lines) == 11 and all("test_acc" in line and " s (" in line for line in run_lines)
    assert log[-1].startswith("summary: 11/11 runs, total wall time")
    assert "summary: 11/11 runs" in stdout and "probe eager:" in stdout

    # the tables again from the run folders alone (a device call stopped before its tables)
    before = {name: (out / name).read_bytes() for name in ("table2.csv", "table2.md", "table3.md")}
    for name in TABLE_FILES | claims:
        (out / name).unlink()
    onepass.tables_only(tiny_params(), "tiny", out)
    assert {p.name for p in out.iterdir()} >= TABLE_FILES | claims
    assert {name: (out / name).read_bytes() for name in before} == before


def test_data_cache_is_reused_only_for_the_same_archive(tmp_path):
    lines = []
    make_archive(tmp_path / "a.tar.gz", seed=0)
    make_archive(tmp_path / "b.tar.gz", seed=1)
    cache = tmp_path / "cache"
    first, _ = onepass.prepare_data(cache, tmp_path / "a.tar.gz", {}, None, lines.append)
    again, _ = onepass.prepare_data(cache, tmp_path / "a.tar.gz", {}, None, lines.append)
    assert lines == [f"data: reusing the cache in {cache}"]
    assert (again["train_images"] == first["train_images"]).all()
    other, _ = onepass.prepare_data(cache, tmp_path / "b.tar.gz", {}, None, lines.append)
    assert len(lines) == 1 and not (other["train_images"] == first["train_images"]).all()
    assert other["manifest"]["source_sha256"] == data.sha256_of(tmp_path / "b.tar.gz")


# ---------------------------------------------------------------- the plan (no training)
PROBE = {"candidates": {"eager": {"images_per_s": 20_000.0, "compile_s": 0.0, "recompile_s": 0.0},
                        "compile": {"images_per_s": 40_000.0, "compile_s": 20.0, "recompile_s": 1.0}}}
JOBS = [{"adaptation": a, "tta": True} for a in ["none"] * 5 + ["pixel"] * 4 + ["block"] * 2]


def plan(seconds_left, probe=PROBE, epochs=15):
    return onepass.plan(probe, JOBS, epochs, 50_000, 10_000, 512, True, seconds_left, cuda=True)


def test_plan_prefers_compile_when_its_cost_pays_off():
    chosen = plan(480)
    assert chosen["compile"] is True and chosen["epochs"] == 15 and not chosen["epochs_cut"]
    # 11 x 15 epochs at 40k images/s ~ 210 s, plus 3 first compiles and 8 warm ones
    assert 250 < chosen["estimated_s"] < 480 * onepass.SAFETY


def test_plan_prefers_eager_when_compiling_costs_more_than_it_saves():
    probe = {"candidates": {**PROBE["candidates"],
                            "compile": {"images_per_s": 22_000.0, "compile_s": 60.0, "recompile_s": 30.0}}}
    assert plan(None, probe)["compile"] is False
    assert plan(2000, probe)["compile"] is False


def test_plan_cuts_epochs_not_runs_and_says_why():
    chosen = plan(200)
    assert chosen["epochs_cut"] and 1 <= chosen["epochs"] < 15 and chosen["profile_epochs"] == 15
    assert "15 epochs need about" in chosen["cut_reason"]
    assert chosen["estimated_s"] <= onepass.SAFETY * (200 - onepass.TABLES_S)
    assert plan(5)["epochs"] == 1 and "warning" in plan(5)  # never below one epoch


def test_plan_skips_a_failed_candidate_and_needs_one():
    probe = {"candidates": {"eager": PROBE["candidates"]["eager"], "compile": {"error": "BackendCompilerFailed"}}}
    assert plan(480, probe)["compile"] is False
    with pytest.raises(RuntimeError, match="probe failed"):
        plan(480, {"candidates": {"compile": {"error": "x"}}})


def test_keys_are_the_pipelines(tmp_path):
    """The in-memory keys and ciphertexts equal those of the pipeline's encrypt stage."""
    from ppdnn import pipeline
    rng = np.random.default_rng(1)
    splits = {s: (rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), np.arange(20) % 10)
              for s in data.SPLITS}
    data.write_cache(splits, tmp_path / "cache", {"source": "test"})
    params = tiny_params()
    for name in params["ciphers"]:
        assert pipeline.main(["encrypt", "--data", str(tmp_path / "cache"), "--out", str(tmp_path / name),
                              "--cipher", name, "--key-seed", str(params["key_seed"])]) in (0, None)
        ours = ciphers.make_for_configuration(name, params["key_seed"])
        for split, (images, _) in splits.items():
            with np.load(tmp_path / name / f"{split}.npz") as npz:
                assert (ours.encrypt(images) == npz["images"]).all(), (name, split)


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


@pytest.fixture
def one_thread():
    """One torch thread for in-process training (see run_cli), restored afterwards."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_failed_run_is_recorded_and_the_call_fails_at_the_end(tmp_path, one_thread):
    make_archive(tmp_path / "cifar.tar.gz")
    params = tiny_params()
    params["runs"] = [{"name": "broken", "cipher": "pixel", "adaptation": "no-such-network", "augment": "cloud"}]
    with pytest.raises(onepass.RunsFailed, match="1 run\\(s\\) failed: broken-s0"):
        onepass.run_all(params, "tiny", tmp_path / "out", archive=tmp_path / "cifar.tar.gz", probe_seconds=0,
                        build_dir=tmp_path / "build", expected_counts=None)
    record = json.loads((tmp_path / "out" / "onepass.json").read_text())
    assert record["failures"] == ["broken-s0"] and "no-such-network" in record["results"][0]["error"]
    assert "FAILED" in (tmp_path / "out" / "onepass.log").read_text()
