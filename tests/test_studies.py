"""ppdnn.studies: the validation split decides, the profile's setting is what it says, and the
key study pairs runs by seed."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from ppdnn import plan, studies


def fake_table(values: dict) -> pd.DataFrame:
    """{(setting, is the profile's): [val_acc per seed]} for one decision and run."""
    return pd.DataFrame([{"decision": "11: lr", "run": "plain", "setting": setting, "profile_setting": mine,
                          "seed": seed, "val_acc": v}
                         for (setting, mine), accs in values.items() for seed, v in enumerate(accs)])


def test_the_validation_split_picks_the_highest_mean_not_the_best_seed():
    table = fake_table({("lr=0.05", True): [0.60, 0.61], ("lr=0.1", False): [0.64, 0.55]})
    md = studies.choices_markdown(table)
    lines = {line.split("|")[3].strip(): line for line in md.splitlines() if line.startswith("| 11")}
    assert lines["lr=0.05 (the profile's)"].rstrip(" |").endswith("picked")  # 60.5 > 59.5
    assert "picked" not in lines["lr=0.1"] and "| 64.00, 55.00" in lines["lr=0.1"]


def test_the_profiles_own_setting_is_checked(monkeypatch):
    the_plan = plan.Plan.from_params(plan.read("params.yaml"), "quick")
    studies._check_profile_settings(the_plan, "params.yaml")  # the committed profile matches
    monkeypatch.setitem(studies.DECISIONS, "11: peak learning rate and batch size",
                        ({"batch_size": 64, "lr": 0.2}, [("plain", {"lr": 0.1})]))
    with pytest.raises(ValueError, match=r"runs plain with \{'batch_size': 64, 'lr': 0.05\}"):
        studies._check_profile_settings(the_plan, "params.yaml")


def test_a_run_without_a_validation_split_is_refused(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"test_acc": 0.5, "val_acc": None}))
    with pytest.raises(ValueError, match="has no val_acc"):
        studies.read_metric(tmp_path, "val_acc")


def test_variant_folders_are_distinct_per_setting_and_seed():
    folders = [studies.variant_folder(run, setting, seed) for _, alternatives in studies.DECISIONS.values()
               for run, setting in alternatives for seed in studies.SEEDS]
    folders += [studies.variant_folder(run, {}, seed, 1) for run in studies.KEY_RUNS for seed in studies.SEEDS]
    assert len(set(folders)) == len(folders) and "step2_cloud-key1-s0" in folders


def test_the_key_table_pairs_by_seed_and_shows_the_seed_sd():
    table = pd.DataFrame([{"run": "step2_cloud", "seed": s, "test_acc_key0": a, "test_acc_key1": b,
                           "key_difference": b - a, "seed_sd": 0.005, "profile_seeds": 5}
                          for s, a, b in ((0, 0.43, 0.44), (1, 0.42, 0.40))])
    line = [l for l in studies.keys_markdown(table).splitlines() if l.startswith("| step2_cloud")][0]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells == ["step2_cloud", "+1.00, -2.00", "1.50", "0.50", "0.71"]


def test_a_second_key_run_encrypts_in_memory_under_key_seed_plus_one(monkeypatch, tmp_path):
    from ppdnn.stages import train as train_stage

    seen = {}
    monkeypatch.setattr(train_stage, "train", lambda config, configuration, data, out, encrypted_dir, **kw:
                        seen.update(config=config, cipher=configuration.name, encrypted=encrypted_dir, **kw))
    where = {"profile": "quick", "params": "params.yaml", "data": "data/cifar10", "encrypted": "build/encrypted",
             "build": str(tmp_path / "build"), "out": str(tmp_path / "out")}
    studies.train_variant(studies._job("keys", "etc_cloud", {}, 1, 1, where))
    assert seen["encrypted"] is None and seen["key_seed"] == 1 and seen["cipher"] == "etc"
    assert seen["config"].seed == 1 and seen["metrics_dir"] == tmp_path / "out" / "runs" / "etc_cloud-key1-s1"
    studies.train_variant(studies._job("choices", "plain", {"lr": 0.1}, 0, 0, where))
    assert str(seen["encrypted"]).endswith("build/encrypted/plain") and seen["key_seed"] == 0
    assert seen["config"].lr == 0.1 and seen["config"].batch_size == 64  # the profile's, but lr
