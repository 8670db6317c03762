import json

import numpy as np
import pandas as pd
import pytest
import torch

from ppdnn import ciphers, train

COLOURS = np.array([[220, 40, 40], [40, 220, 40], [40, 40, 220], [220, 220, 40]], np.uint8)


def colour_task(n, seed, size=8):
    """An easy task: the class is the hue of the image, under random brightness and pixel noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(COLOURS)
    brightness = rng.uniform(0.4, 1.0, (n, 1, 1, 1))
    noise = rng.integers(-40, 41, (n, size, size, 3))
    images = np.clip(COLOURS[labels][:, None, None, :] * brightness + noise, 0, 255).astype(np.uint8)
    return images, labels


TRAIN = colour_task(640, seed=0)
TEST = colour_task(200, seed=1)


def tiny(**overrides):
    settings = dict(epochs=3, width=8, batch_size=32, device="cpu", num_classes=4, eval_batch_size=100)
    return train.TrainConfig.from_recipe("paper", **{**settings, **overrides})


def fit(config, out_dir, cipher=None, train_data=TRAIN, **kwargs):
    return train.run(config, train.Dataset(*train_data, *TEST, cipher=cipher), out_dir, progress=False, **kwargs)


def deterministic_part(out_dir):
    metrics = {**json.loads((out_dir / train.METRICS).read_text()), **json.loads((out_dir / train.RUN_INFO).read_text())}
    epochs = pd.read_csv(out_dir / train.EPOCHS_CSV).drop(columns=["seconds", "images_per_s"])
    timing = {"wall_time_s", "images_per_s"}
    return {k: v for k, v in metrics.items() if k not in timing}, epochs


# ------------------------------------------------------------------ configuration
def test_paper_recipe_is_section_4_1():
    config = train.TrainConfig.from_recipe("paper")
    assert (config.epochs, config.batch_size, config.lr, config.momentum, config.weight_decay) == (300, 128, 0.1, 0.9, 5e-4)
    assert config.milestones == (150.0, 225.0) and config.lr_gamma == 0.1 and config.schedule == "multistep"
    assert not config.nesterov and config.label_smoothing == 0 and not config.amp and not config.eval_tta
    lrs = [train.learning_rate(config, epoch * 10, 10) for epoch in (0, 149, 150, 224, 225, 299)]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


@pytest.mark.parametrize("epochs,milestones", [(2, (1.0, 1.5)), (3, (1.5, 2.25)), (20, (10.0, 15.0))])
def test_fewer_epochs_scale_the_milestones(epochs, milestones):
    assert train.TrainConfig.from_recipe("paper", epochs=epochs).milestones == milestones
    assert train.TrainConfig.from_recipe("paper", epochs=epochs, milestones=(5,)).milestones == (5.0,)


def test_three_epochs_drop_the_lr_twice_at_half_and_three_quarters():
    config = train.TrainConfig.from_recipe("paper", epochs=3)
    steps = 100  # per epoch
    lrs = [train.learning_rate(config, s, steps) for s in (0, 149, 150, 224, 225, 299)]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


@pytest.mark.parametrize("recipe", ["fast", "cpu"])
def test_one_cycle_recipes_schedule_a_triangle(recipe):
    config = train.TrainConfig.from_recipe(recipe, epochs=3)
    steps, total = 97, 97 * config.epochs
    lrs = np.array([train.learning_rate(config, s, steps) for s in range(total)])
    peak = int(config.warmup_fraction * total)
    assert lrs[0] == pytest.approx(config.start_factor * config.lr)
    assert lrs.max() == pytest.approx(config.lr) and lrs.argmax() == peak
    assert np.all(np.diff(lrs[:peak + 1]) > 0) and np.all(np.diff(lrs[peak:]) < 0)
    assert 0 < lrs[-1] < 0.01 * config.lr


def test_unknown_or_bad_config_values_raise():
    with pytest.raises(ValueError, match="unknown TrainConfig key.*'learning_rate'"):
        train.TrainConfig.from_recipe("paper", learning_rate=0.1)
    with pytest.raises(ValueError, match="unknown recipe"):
        train.TrainConfig.from_recipe("slow")
    with pytest.raises(ValueError, match="augment"):
        train.TrainConfig.from_recipe("paper", augment="server")
    with pytest.raises(ValueError, match="epochs"):
        train.TrainConfig.from_recipe("paper", epochs=0)


def test_select_subset_is_class_balanced_and_in_data_order():
    labels = np.array([0, 1, 1, 2, 0, 2, 1, 0, 2, 2])
    chosen = train.select_subset(labels, 6)
    assert chosen.tolist() == [0, 1, 2, 3, 4, 5]
    assert np.bincount(labels[train.select_subset(labels, 7)]).tolist() == [3, 2, 2]
    with pytest.raises(ValueError, match="class-balanced"):
        train.select_subset(labels, 10)


# ------------------------------------------------------------------ training
def test_tiny_run_beats_chance_and_writes_its_outputs(tmp_path):
    metrics = fit(tiny(milestones=(2,)), tmp_path, extra={"scheme": "plain", "profile": "test"})
    assert metrics["test_acc"] >= 0.9  # chance is 0.25
    scalars = json.loads((tmp_path / train.METRICS).read_text())
    assert list(scalars) == list(train.METRIC_KEYS) and scalars["test_acc"] == metrics["test_acc"]
    written = json.loads((tmp_path / train.RUN_INFO).read_text())
    assert not set(written) & set(train.METRIC_KEYS)
    assert set(written["per_class_acc"]) == {"0", "1", "2", "3"}
    assert written["scheme"] == "plain" and written["recipe"] == "paper" and written["seed"] == 0
    assert written["device"].startswith("cpu") and scalars["images_per_s"] > 0 and written["dtype"] == "fp32"
    epochs = pd.read_csv(tmp_path / train.EPOCHS_CSV)
    assert list(epochs.columns) == list(train.EPOCH_COLUMNS) and epochs["epoch"].tolist() == [1, 2, 3]


def test_client_augmentation_with_an_identity_cipher_equals_cloud_augmentation(tmp_path):
    class Identity:
        def encrypt(self, x):
            return x * 1  # a copy, for numpy arrays and tensors alike

    config = tiny(epochs=1)
    client = fit(train.dataclasses.replace(config, augment="client"), tmp_path / "client", cipher=Identity())
    cloud = fit(config, tmp_path / "cloud")
    assert client["test_loss"] == cloud["test_loss"] and client["train_loss_smoothed"] == cloud["train_loss_smoothed"]


def test_client_augmentation_encrypts_every_augmented_batch(tmp_path):
    class Negative:  # p -> 255 - p everywhere, so the zero padding becomes 255 in the client
        calls = 0

        def encrypt(self, x):
            Negative.calls += 1
            return 255 - x

    negative = (255 - TRAIN[0], TRAIN[1])
    config = tiny(epochs=1)
    client = fit(train.dataclasses.replace(config, augment="client"), tmp_path / "client", cipher=Negative())
    cloud = fit(config, tmp_path / "cloud", train_data=negative)
    assert Negative.calls >= 640 // 32
    assert client["normalisation"] == cloud["normalisation"]  # stats of encrypted images
    assert client["train_loss_smoothed"] != cloud["train_loss_smoothed"]  # padding differs: 255 in the client, 0 in the cloud


def test_cipher_and_augmentation_site_must_agree(tmp_path):
    with pytest.raises(ValueError, match="client"):
        fit(tiny(augment="client"), tmp_path)
    with pytest.raises(ValueError, match="cipher=None"):
        fit(tiny(augment="cloud"), tmp_path, cipher=object())
    with pytest.raises(TypeError, match="uint8"):
        train.run(tiny(), train.Dataset(TRAIN[0].astype(np.float32), TRAIN[1], *TEST), tmp_path, progress=False)


# ------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("threads", [1, 2])
def test_a_killed_run_resumes_to_bit_identical_results(tmp_path, threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _kill_and_resume(tmp_path)
    finally:
        torch.set_num_threads(before)


def _kill_and_resume(tmp_path):
    config = tiny(augment="cloud", adaptation="pixel")
    fit(config, tmp_path / "whole")

    def kill_after_first_epoch(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(config, tmp_path / "parts", on_epoch_end=kill_after_first_epoch)
    assert pd.read_csv(tmp_path / "parts" / train.EPOCHS_CSV)["epoch"].tolist() == [1]
    resumed = []
    fit(config, tmp_path / "parts", on_epoch_end=lambda row: resumed.append(row["epoch"]))
    assert resumed == [2, 3]  # continued from the checkpoint, not restarted

    whole_metrics, whole_epochs = deterministic_part(tmp_path / "whole")
    parts_metrics, parts_epochs = deterministic_part(tmp_path / "parts")
    assert parts_metrics == whole_metrics
    pd.testing.assert_frame_equal(parts_epochs, whole_epochs, check_exact=True)
    whole = torch.load(tmp_path / "whole" / train.CHECKPOINT, weights_only=True)["model"]
    parts = torch.load(tmp_path / "parts" / train.CHECKPOINT, weights_only=True)["model"]
    assert all(torch.equal(whole[k], parts[k]) for k in whole)


def test_a_finished_run_is_not_retrained(tmp_path):
    config = tiny(epochs=1)
    first = fit(config, tmp_path)
    calls = []
    again = fit(config, tmp_path, on_epoch_end=calls.append)
    assert calls == [] and again["test_loss"] == first["test_loss"]


def test_corrupt_checkpoint_raises_naming_the_file(tmp_path):
    config = tiny(epochs=1)
    fit(config, tmp_path)
    path = tmp_path / train.CHECKPOINT
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(train.CheckpointError, match="checkpoint.pt.*corrupt"):
        fit(config, tmp_path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(train.CheckpointError, match=str(path)):
        fit(config, tmp_path)
    torch.save({"model": {}}, path)
    with pytest.raises(train.CheckpointError, match="not a ppdnn"):
        fit(config, tmp_path)


def test_checkpoint_of_another_configuration_or_data_raises(tmp_path):
    fit(tiny(epochs=1), tmp_path)
    with pytest.raises(train.CheckpointError, match=r"another configuration \(width: 8 -> 4\)"):
        fit(tiny(epochs=1, width=4), tmp_path)
    with pytest.raises(train.CheckpointError, match="different data or key"):
        fit(tiny(epochs=1), tmp_path, train_data=(255 - TRAIN[0], TRAIN[1]))
    assert fit(tiny(epochs=1, width=4), tmp_path, resume=False)["config"]["width"] == 4


def test_fast_recipe_runs_on_cpu_in_fp32_and_reports_flip_tta(tmp_path):
    config = train.TrainConfig.from_recipe("fast", epochs=2, width=8, batch_size=64, device="cpu",
                                           num_classes=4, eval_batch_size=100)
    metrics = fit(config, tmp_path)
    assert 0 <= metrics["test_acc_tta"] <= 1 and metrics["config"]["compile"] is True
    n_test = metrics["test_images"]
    assert round(metrics["test_acc_tta"] * n_test) == pytest.approx(metrics["test_acc_tta"] * n_test)
    # on a CPU the recipe trains in fp32: bf16 autocast and compile are CUDA-only
    state = torch.load(tmp_path / train.CHECKPOINT, weights_only=True)["model"]
    assert all(t.dtype in (torch.float32, torch.int64) for t in state.values())
    epochs = pd.read_csv(tmp_path / train.EPOCHS_CSV)
    assert epochs["lr"].iloc[-1] < config.lr  # the triangle decays to ~0 by the end


def test_no_flip_tta_for_augmentation_in_the_client(tmp_path):
    """A flipped ciphertext is not what a client-augmented network saw (it saw encrypt(flip(x)))."""
    config = train.TrainConfig.from_recipe("fast", epochs=1, width=8, batch_size=64, device="cpu",
                                           num_classes=4, eval_batch_size=100, augment="client")
    metrics = fit(config, tmp_path, cipher=ciphers.make("pixel", shape=TRAIN[0].shape[1:3], seed=0))
    assert "test_acc_tta" not in metrics and 0 <= metrics["test_acc"] <= 1


def test_recipes_are_departures_from_the_paper_defaults():
    assert train.RECIPES["paper"] == {}  # TrainConfig's defaults are the paper's recipe
    assert train.TrainConfig() == train.TrainConfig.from_recipe("paper")
    for recipe in train.RECIPES.values():
        assert "epochs" not in recipe  # how long to train is the profile's business
    cpu = train.TrainConfig.from_recipe("cpu")
    assert cpu.nesterov and cpu.label_smoothing == 0.2 and not cpu.eval_every_epoch and not cpu.amp


def test_cpu_recipe_evaluates_the_test_set_after_the_last_epoch_only(tmp_path):
    config = train.TrainConfig.from_recipe("cpu", epochs=2, width=8, batch_size=32, device="cpu",
                                           num_classes=4, eval_batch_size=100)
    metrics = fit(config, tmp_path)
    epochs = pd.read_csv(tmp_path / train.EPOCHS_CSV)
    assert epochs["test_acc"].isna().tolist() == [True, False]
    assert metrics["test_acc"] == epochs["test_acc"].iloc[-1]


# ------------------------------------------------------------------ reliability
def test_models_with_a_hazardous_convolution_train_in_nchw_on_cpu():
    from ppdnn import models
    assert train.channels_last_hazards(models.build("none", width=4)) == ["classifier.layer2.0.shortcut.0"]
    assert train.channels_last_hazards(models.build("none", width=8)) == []
    for adaptation in ("pixel", "block"):  # stride-1 1x1 convs and the 4x4/4 conv are safe
        assert train.channels_last_hazards(models.build(adaptation, width=16)) == []
    config = tiny(width=4)
    assert not train.use_channels_last(config, models.build("none", width=4), torch.device("cpu"))
    assert train.use_channels_last(config, models.build("none", width=8), torch.device("cpu"))


HANG_SCRIPT = """
import sys, tempfile
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads({threads})
from test_train import TRAIN, TEST, tiny
from ppdnn import train
metrics = train.run(tiny(width=4, epochs=2), train.Dataset(*TRAIN, *TEST), tempfile.mkdtemp(), progress=False)
print("finished", metrics["channels_last"])
"""


@pytest.mark.timeout(300)
@pytest.mark.parametrize("threads", [1, 2])
def test_the_configuration_that_hung_onednn_now_finishes(threads):
    """Width 4 (a 1x1 stride-2 shortcut with 4 input channels) hung (2 threads) or aborted
    (1 thread) in channels_last on AVX2 CPUs. ONEDNN_MAX_CPU_ISA=AVX2 makes any x86 CPU pick
    those kernels; run in a subprocess with a timeout so a regression fails, not hangs."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    script = HANG_SCRIPT.format(tests=str(Path(__file__).parent), threads=threads)
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "finished False" in result.stdout


def test_a_rerun_with_the_same_seed_is_bit_identical_with_two_threads(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first = fit(tiny(epochs=2, adaptation="pixel"), tmp_path / "a")
        second = fit(tiny(epochs=2, adaptation="pixel"), tmp_path / "b")
    finally:
        torch.set_num_threads(before)
    assert deterministic_part(tmp_path / "a")[0] == deterministic_part(tmp_path / "b")[0]
    assert first["test_loss"] == second["test_loss"] and first["device"].endswith("2 threads)")


def test_a_killed_checkpoint_write_leaves_nothing_behind_after_the_next_start(tmp_path):
    fit(tiny(epochs=1), tmp_path)
    stale = [tmp_path / ".checkpoint.pt.abc123.tmp", tmp_path / ".metrics.json.xyz.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    mine = tmp_path / "notes.tmp"
    mine.write_text("a user's file")
    fit(tiny(epochs=1), tmp_path)
    assert not any(p.exists() for p in stale) and mine.exists()


def test_an_unwritable_out_dir_is_found_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    calls = []
    with pytest.raises(OSError, match="cannot write to"):
        fit(tiny(epochs=1), blocker / "out", on_epoch_end=calls.append)
    assert calls == []


def test_a_stalled_stage_dumps_every_threads_stack():
    import subprocess
    import sys
    script = ("import time\nfrom ppdnn import train\n"
              "with train.stall_watchdog(0.5):\n    time.sleep(1.6)\nprint('done')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "done" in result.stdout
    assert "most recent call first" in result.stderr and "time.sleep" not in result.stdout


@pytest.mark.parametrize("epoch", [-3, 0, 99, True, 1.5])
def test_a_checkpoint_with_an_epoch_outside_the_run_is_refused(tmp_path, epoch):
    config = tiny(epochs=1)
    fit(config, tmp_path)
    state = torch.load(tmp_path / train.CHECKPOINT, weights_only=True)
    state["epoch"] = epoch
    torch.save(state, tmp_path / train.CHECKPOINT)
    with pytest.raises(train.CheckpointError, match="is not in 1..1"):
        fit(config, tmp_path)


def test_results_are_strict_json(tmp_path):
    with pytest.raises(ValueError, match="not JSON compliant"):
        train.write_json(tmp_path / "m.json", {"test_loss": float("nan")})
    assert not (tmp_path / "m.json").exists()
