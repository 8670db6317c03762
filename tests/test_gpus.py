"""ppdnn.gpus: one GPU per queued job by lock files, with fake GPU counts (no GPU needed)."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ppdnn import gpus

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def test_concurrent_holders_in_threads_get_distinct_gpus(tmp_path):
    n = 4
    got, errors = [], []
    all_in = threading.Barrier(n)

    def job():
        try:
            with gpus.choose_gpu(n, tmp_path, timeout=10, poll=0.01) as index:
                got.append(index)
                all_in.wait(timeout=10)  # everybody holds a GPU at the same time
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=job) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors and sorted(got) == list(range(n))


def test_first_free_gpu_and_a_released_one_is_reused(tmp_path):
    with gpus.choose_gpu(3, tmp_path) as a:
        with gpus.choose_gpu(3, tmp_path) as b:
            assert (a, b) == (0, 1)
        with gpus.choose_gpu(3, tmp_path) as c:
            assert c == 1  # b's GPU, released
    with gpus.choose_gpu(3, tmp_path) as d:
        assert d == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu0.lock", "gpu1.lock"]  # files stay


def test_all_busy_raises_after_the_timeout(tmp_path):
    with gpus.choose_gpu(1, tmp_path):
        start = time.monotonic()
        with pytest.raises(gpus.NoFreeGPU, match="all 1 GPUs stayed locked for 0.3 s"):
            with gpus.choose_gpu(1, tmp_path, timeout=0.3, poll=0.05):
                pass  # pragma: no cover
        assert 0.25 < time.monotonic() - start < 5
    assert issubclass(gpus.NoFreeGPU, TimeoutError)


def test_all_busy_waits_by_default_until_one_is_released(tmp_path):
    waits, got = [], []
    with gpus.choose_gpu(2, tmp_path) as a, gpus.choose_gpu(2, tmp_path) as b:
        assert {a, b} == {0, 1}

        def job():
            with gpus.choose_gpu(2, tmp_path, poll=0.02, on_wait=waits.append) as index:
                got.append(index)

        t = threading.Thread(target=job)
        t.start()
        time.sleep(0.3)
        assert got == [] and waits == [2]  # waiting, and said so once
    t.join(10)
    assert got == [0]


def _holder(tmp_path, n=2):
    """A subprocess holding a GPU through the command line; prints CUDA_VISIBLE_DEVICES."""
    child = "import os, sys; print(os.environ['CUDA_VISIBLE_DEVICES'], flush=True); sys.stdin.read()"
    proc = subprocess.Popen([sys.executable, "-m", "ppdnn.gpus", "--locks", str(tmp_path), "--gpus", str(n),
                             "run", "--", sys.executable, "-c", child],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, start_new_session=True)
    return proc, proc.stdout.readline().strip()


def test_processes_get_distinct_gpus_and_a_killed_holder_frees_its_gpu(tmp_path):
    first, gpu_a = _holder(tmp_path)
    second, gpu_b = _holder(tmp_path)
    try:
        assert {gpu_a, gpu_b} == {"0", "1"}
        assert [row["held"] for row in gpus.status(2, tmp_path)] == [True, True]
        assert "pid" in gpus.status(2, tmp_path)[0]["holder"]
        # the whole job dies without cleaning up: the kernel drops its lock
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        with gpus.choose_gpu(2, tmp_path, timeout=10, poll=0.05) as index:
            assert str(index) == gpu_a
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.stdin.close()
                proc.wait(10)
    assert second.returncode == 0


def test_cli_reports_busy_after_its_timeout(tmp_path):
    with gpus.choose_gpu(1, tmp_path):
        proc = subprocess.run([sys.executable, "-m", "ppdnn.gpus", "--locks", str(tmp_path), "--gpus", "1",
                               "run", "--timeout", "0.2", "--", sys.executable, "-c", "pass"],
                              capture_output=True, text=True, env=ENV, timeout=60)
    assert proc.returncode == 75 and "stayed locked" in proc.stderr


def test_visible_devices_maps_slots_into_an_existing_list():
    assert gpus.visible_devices(2) == "2"
    assert gpus.visible_devices(1, "4,5,6") == "5"
    assert gpus.visible_devices(0, "GPU-ab12, GPU-cd34") == "GPU-ab12"
    assert gpus.visible_devices(3, "") == "3"
    with pytest.raises(ValueError, match="names only 2"):
        gpus.visible_devices(2, "4,5")


def test_gpu_count_from_the_environment(monkeypatch):
    assert gpus.gpu_count({"PPDNN_GPU_COUNT": "8"}) == 8
    assert gpus.gpu_count({"CUDA_VISIBLE_DEVICES": "2,3"}) == 2
    assert gpus.gpu_count({"CUDA_VISIBLE_DEVICES": ""}) == 0
    monkeypatch.setattr(gpus.shutil, "which", lambda name: None)
    assert gpus.gpu_count({}) == 0


def test_gpu_for_job_sets_and_restores_the_environment(tmp_path):
    env = {"PPDNN_GPU_LOCKS": str(tmp_path), "PPDNN_GPU_COUNT": "2", "OTHER": "x"}
    lines = []
    with gpus.gpu_for_job(environ=env, log=lines.append) as a:
        assert a == 0 and env["CUDA_VISIBLE_DEVICES"] == "0" and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
        assert env["PPDNN_GPU_SLOT"] == "0"
        inner = dict(env)  # a child process of the job: no second lock, the same GPU
        with gpus.gpu_for_job(environ=inner, log=lines.append) as b:
            assert b == 0 and inner == env
        with gpus.choose_gpu(2, tmp_path) as other:  # another job meanwhile
            assert other == 1
    assert env == {"PPDNN_GPU_LOCKS": str(tmp_path), "PPDNN_GPU_COUNT": "2", "OTHER": "x"}
    assert "GPU slot 0 of 2" in lines[0]
    # a scheduler's list: slot i is its i-th entry
    env = {"PPDNN_GPU_LOCKS": str(tmp_path), "CUDA_VISIBLE_DEVICES": "6,7"}
    with gpus.gpu_for_job(environ=env, log=lines.append) as a:
        assert a == 0 and env["CUDA_VISIBLE_DEVICES"] == "6"
    assert env["CUDA_VISIBLE_DEVICES"] == "6,7" and "CUDA_DEVICE_ORDER" not in env and "PPDNN_GPU_SLOT" not in env


def test_gpu_for_job_is_off_without_a_lock_folder_or_gpus(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "3"}
    with gpus.gpu_for_job(environ=env) as index:
        assert index is None and env == {"CUDA_VISIBLE_DEVICES": "3"}
    lines = []
    env = {"PPDNN_GPU_LOCKS": str(tmp_path), "PPDNN_GPU_COUNT": "0"}
    with gpus.gpu_for_job(environ=env, log=lines.append) as index:
        assert index is None and "CUDA_VISIBLE_DEVICES" not in env
    assert "no GPU" in lines[0]


def test_gpu_for_job_timeout_from_the_environment(tmp_path):
    env = {"PPDNN_GPU_LOCKS": str(tmp_path), "PPDNN_GPU_COUNT": "1", "PPDNN_GPU_TIMEOUT": "0.1"}
    with gpus.choose_gpu(1, tmp_path):
        with pytest.raises(gpus.NoFreeGPU):
            with gpus.gpu_for_job(environ=env, log=lambda line: None):
                pass  # pragma: no cover


def test_bad_counts_are_refused(tmp_path):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="positive int"):
            with gpus.choose_gpu(bad, tmp_path):
                pass  # pragma: no cover


def test_bad_environment_numbers_are_one_line_errors_naming_the_variable(tmp_path):
    with pytest.raises(ValueError, match="PPDNN_GPU_COUNT must be a whole number, got 'abc'"):
        gpus.gpu_count({"PPDNN_GPU_COUNT": "abc"})
    with pytest.raises(ValueError, match="PPDNN_GPU_COUNT must be a whole number >= 0"):
        gpus.gpu_count({"PPDNN_GPU_COUNT": "-2"})
    env = {"PPDNN_GPU_LOCKS": str(tmp_path), "PPDNN_GPU_COUNT": "1", "PPDNN_GPU_TIMEOUT": "soon"}
    with pytest.raises(ValueError, match="PPDNN_GPU_TIMEOUT must be a number of seconds, got 'soon'"):
        with gpus.gpu_for_job(environ=env, log=lambda line: None):
            pass  # pragma: no cover
    proc = subprocess.run([sys.executable, "-m", "ppdnn.gpus", "--locks", str(tmp_path), "status"],
                          capture_output=True, text=True, env={**ENV, "PPDNN_GPU_COUNT": "abc"}, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "ppdnn.gpus: error: PPDNN_GPU_COUNT must be a whole number, got 'abc'"


def test_status_names_the_holder_and_creates_no_lock_file(tmp_path):
    assert gpus.status(2, tmp_path / "none") == [{"gpu": 0, "held": False, "holder": ""},
                                                 {"gpu": 1, "held": False, "holder": ""}]
    assert not (tmp_path / "none").exists()
    with gpus.choose_gpu(2, tmp_path):
        rows = gpus.status(2, tmp_path)
        assert [r["held"] for r in rows] == [True, False]
        assert f"pid {os.getpid()} since " in rows[0]["holder"]
        with gpus.choose_gpu(2, tmp_path) as second:
            assert second == 1  # status's probe released what it took
    assert [r["held"] for r in gpus.status(2, tmp_path)] == [False, False]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu0.lock", "gpu1.lock"]
