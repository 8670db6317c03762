"""params.yaml and its checks, the data, encrypt and train stages and their errors.

The DVC pipeline end to end (smoke profile, a new scheme in one file) and the caching
tests are in test_caching.py."""
import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import yaml

from ppdnn import check, ciphers, data, encrypted, paper, plan, train
from ppdnn.stages import encrypt as encrypt_stage
from ppdnn.stages import train as train_stage

ROOT = Path(__file__).resolve().parents[1]


def params() -> dict:
    return plan.read(ROOT / "params.yaml")


# ---------------------------------------------------------------- params.yaml
def test_params_define_the_eleven_runs_four_seeds_and_every_profile():
    the_plan = check.check(params())
    names = [r.name for r in the_plan.runs]
    assert len(names) == len(set(names)) == 11
    table_runs = {r[1] for r in paper.TABLE2_ROWS} | {r[1] for r in paper.TABLE3_ROWS} | {r[3] for r in paper.TABLE3_ROWS}
    assert table_runs == set(names)
    assert set(params()["profiles"]) == {"smoke", "quick", "long", "fast", "paper"}
    assert len(the_plan.seeds) >= 4  # every row of the tables with at least four training seeds
    assert [folder for folder in (run.folder(seed) for run, seed in the_plan.jobs())][:2] == ["plain-s0", "step2_client-s0"]


def test_a_profile_resolves_into_one_training_configuration():
    p = params()
    quick = plan.Plan.from_params(p, "quick")
    run = quick.run("step2_adapt_client")
    config = train_stage.config_for(quick.train, run, 2, "params.yaml")
    assert isinstance(config, train.TrainConfig)
    assert (config.recipe, config.width, config.val_size) == ("cpu", 16, 5000)
    assert (config.adaptation, config.augment, config.seed) == ("pixel", "client", 2)
    paper_plan = plan.Plan.from_params(p, "paper")
    config = train_stage.config_for(paper_plan.train, paper_plan.run("plain"), 0, "params.yaml")
    assert config == train.TrainConfig(epochs=300, width=64, train_subset=50000, test_subset=10000,
                                       device="cuda")  # exactly Sec. 4.1: no validation split


@pytest.mark.parametrize("edit,message", [
    (lambda p: p.pop("runs"), r"missing key 'runs'"),
    (lambda p: p.update(seeds=[0, 0]), "seeds must be a non-empty list of distinct"),
    (lambda p: p.update(profile="huge"), "profile 'huge' is not defined"),
    (lambda p: p.update(profile=["quick"]), r"profile \['quick'\] is not defined"),
    (lambda p: p["profiles"]["quick"]["train"].update(widht=3), r"unknown TrainConfig key\(s\) 'widht'"),
    (lambda p: p["profiles"]["quick"]["train"].update(recipe="slow"), "unknown recipe 'slow'"),
    (lambda p: p["profiles"]["quick"]["train"].update(recipe=["paper"]), r"unknown recipe \['paper'\]"),
    (lambda p: p["profiles"]["quick"]["train"].update(epochs=0), "epochs must be a positive int"),
    (lambda p: p["profiles"]["quick"]["train"].update(lr="0.1"), "lr must be a number, got '0.1'"),
    (lambda p: p["profiles"]["quick"]["train"].update(lr=float("inf")), "must be a finite number"),
    (lambda p: p["profiles"]["quick"]["train"].update(lr_gamma=float("nan")), "must be a finite number"),
    (lambda p: p["profiles"]["quick"]["train"].update(start_factor=-5), r"start_factor must be a finite number in \(0, 1\]"),
    (lambda p: p["profiles"]["quick"]["train"].update(milestones=[float("nan")]), "must be a finite number"),
    (lambda p: p["profiles"]["quick"]["train"].update(val_size=-1), "val_size must be a non-negative int"),
    (lambda p: p["profiles"]["quick"].update(train=None), "train must be a mapping"),
    (lambda p: p["profiles"]["quick"].update(train=[1, 2]), "train must be a mapping"),
    (lambda p: p["profiles"]["quick"].update(security_images=-5), r"security_images must be an int in 1\.\.10000"),
    (lambda p: p["profiles"]["quick"].update(security_images=0), r"security_images must be an int in 1\.\.10000"),
    (lambda p: p["profiles"]["quick"].pop("security_images"), "needs exactly the keys"),
    (lambda p: p["ciphers"].update(rot13={"scheme": "rot13"}), "unknown scheme 'rot13'"),
    (lambda p: p["ciphers"].update(etc_shuffle={"scheme": "etc", "shuffle": True}), "only applies to 'pixel'"),
    (lambda p: p["runs"][0].update(adaptation="big"), "unknown adaptation 'big'"),
    (lambda p: p["runs"][0].update(augment="server"), "unknown augment 'server'"),
    (lambda p: p["runs"][0].update(cipher="etc_shuffle"), "cipher 'etc_shuffle' is not under ciphers"),
    (lambda p: p["runs"][1].update(name="plain"), "run names must be distinct"),
])
def test_every_mistake_in_params_yaml_is_named(edit, message):
    p = params()
    edit(p)
    with pytest.raises(plan.ParamsError, match=message):
        check.check(p)


def test_params_files_that_are_not_yaml_mappings_are_one_line(tmp_path, capsys):
    cases = {"unclosed.yaml": ("profile: [unclosed\n", "not valid YAML"),
             "twice.yaml": ("profile: quick\nseeds: [0]\nprofile: smoke\n", "duplicate key 'profile'"),
             "list.yaml": ("- 1\n", "must be a mapping"),
             "other.yaml": ("sedes: [0]\n", "unknown keys ['sedes']")}
    paths = {name: tmp_path / name for name in cases}
    for name, (text, _) in cases.items():
        paths[name].write_text(text)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    expected = [(paths[n], m) for n, (_, m) in cases.items()] + [
        (tmp_path / "none.yaml", "not found"), (tmp_path, "not a regular file"), (fifo, "not a regular file")]
    for path, message in expected:
        assert check.main(["--params", str(path)]) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_gpu_profiles_refuse_to_start_without_cuda(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(plan.ParamsError, match="needs a CUDA GPU"):
        train_stage.require_device("cuda", "fast")
    train_stage.require_device("cpu", "quick")  # no error


# ---------------------------------------------------------------- the encrypt and train stages
def tiny_cache(folder: Path, n: int = 400) -> Path:
    rng = np.random.default_rng(0)
    splits = {s: (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 10) for s in data.SPLITS}
    data.write_cache(splits, folder, {"source": "synthetic"})
    return folder


def encrypt_argv(cache, out, cipher):
    return ["--params", str(ROOT / "params.yaml"), "--cipher", cipher, "--data", str(cache), "--out", str(out)]


def test_the_encrypt_stage_replaces_only_what_it_wrote(tmp_path, capsys):
    cache = tiny_cache(tmp_path / "data")
    out = tmp_path / "enc"
    assert encrypt_stage.main(encrypt_argv(cache, out, "pixel")) == 0
    first = (out / "key.json").read_bytes()
    assert encrypt_stage.main(encrypt_argv(cache, out, "pixel")) == 0  # its own output: replaced, same key
    assert (out / "key.json").read_bytes() == first
    assert stat.S_IMODE((out / "key.json").stat().st_mode) == 0o600
    key = ciphers.load(out / "key.json")
    with np.load(out / "train.npz") as npz:
        assert key.fingerprint_matches(str(npz["key_fingerprint"]))
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.tex").write_text("years of work")
    for target, message in ((user, "was not written by ppdnn"), (cache, "would overwrite the plain data"),
                            (cache / "sub", "would overwrite the plain data")):
        assert encrypt_stage.main(encrypt_argv(cache, target, "pixel")) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in user.iterdir()) == ["thesis.tex"]
    assert data.load(cache)["train_images"].shape == (400, 32, 32, 3)


@pytest.fixture
def encrypted_sets(tmp_path):
    cache = tiny_cache(tmp_path / "data")
    for name in ("plain", "pixel", "pixel_shuffle"):
        assert encrypt_stage.main(encrypt_argv(cache, tmp_path / name, name)) == 0
    return tmp_path


def test_a_data_set_is_read_only_as_the_configuration_it_claims(encrypted_sets):
    entries = params()["ciphers"]
    pixel = ciphers.configuration("pixel", entries)
    sets = encrypted.read(encrypted_sets / "pixel", pixel)
    assert sets["cipher"].fingerprint == ciphers.make_for_configuration(pixel, 0).fingerprint
    for folder, configuration in (("plain", pixel), ("pixel_shuffle", pixel),
                                  ("pixel", ciphers.configuration("pixel_shuffle", entries))):
        with pytest.raises(ValueError, match="the run's cipher and its data set disagree"):
            encrypted.read(encrypted_sets / folder, configuration)


def _rewrite(path: Path, **changes) -> None:
    with np.load(path) as npz:
        fields = {k: npz[k] for k in npz.files}
    np.savez(path, **{**fields, **changes})


def test_plaintext_or_changed_images_are_never_taken_for_ciphertext(encrypted_sets):
    pixel = ciphers.configuration("pixel", params()["ciphers"])
    folder = encrypted_sets / "pixel"
    key = ciphers.load(folder / "key.json")
    with np.load(folder / "train.npz") as npz:
        images = npz["images"]
    # a decrypted copy that kept the fingerprint: the tag does not match plaintext
    _rewrite(folder / "train.npz", images=key.decrypt(images))
    with pytest.raises(ValueError, match="authentication tag"):
        encrypted.read(folder, pixel)
    tampered = images.copy()
    tampered[0, 0, 0, 0] ^= 1
    _rewrite(folder / "train.npz", images=tampered)
    with pytest.raises(ValueError, match="authentication tag"):
        encrypted.read(folder, pixel)
    _rewrite(folder / "train.npz", images=images)
    assert (encrypted.read(folder, pixel)["train_images"] == images).all()  # intact again
    shutil.copy(encrypted_sets / "pixel_shuffle" / "key.json", folder / "key.json")
    with pytest.raises(ValueError, match="disagree"):
        encrypted.read(folder, pixel)


def train_argv(tmp_path, **changes):
    args = {"--profile": "smoke", "--run": "step2_cloud", "--cipher": "pixel", "--adaptation": "none",
            "--augment": "cloud", "--seed": "0", "--data": str(tmp_path / "data"),
            "--encrypted": str(tmp_path / "pixel"), "--out": str(tmp_path / "out"), "--metrics": str(tmp_path / "m")}
    args.update(changes)
    return ["--params", str(ROOT / "params.yaml")] + [x for kv in args.items() for x in kv]


def test_bad_train_arguments_fail_in_one_line_before_training(encrypted_sets, capsys):
    cases = [({"--adaptation": "huge"}, "unknown adaptation 'huge'"),
             ({"--augment": "server"}, "unknown augment 'server'"),
             ({"--profile": "slow"}, "profile 'slow' is not defined"),
             ({"--cipher": "rot13"}, "unknown cipher configurations ['rot13']"),
             ({"--encrypted": str(encrypted_sets / "plain")}, "the run's cipher and its data set disagree"),
             ({"--data": str(encrypted_sets / "nowhere")}, "no CIFAR-10 cache")]
    for change, message in cases:
        assert train_stage.main(train_argv(encrypted_sets, **change)) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (encrypted_sets / "m").exists()


@pytest.mark.timeout(300)
def test_the_train_stage_writes_the_few_scalars_and_provenance_apart(encrypted_sets, capsys):
    assert train_stage.main(train_argv(encrypted_sets)) == 0, capsys.readouterr().err
    scalars = json.loads((encrypted_sets / "m" / train.METRICS).read_text())
    info = json.loads((encrypted_sets / "m" / train.RUN_INFO).read_text())
    assert list(scalars) == list(train.METRIC_KEYS) and all(isinstance(v, float) for v in scalars.values())
    assert info["run"] == "step2_cloud" and info["cipher"] == "pixel" and info["profile"] == "smoke"
    assert info["val_images"] == 100 and info["dtype"] in ("fp32", "bf16") and info["data_source"] == "synthetic"
    assert not set(info) & set(scalars)
