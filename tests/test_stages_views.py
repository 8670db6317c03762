"""The view stages (ppdnn.stages.tables, .figures, .key_space): files out, bounds checked
before any work, one-line errors from their command lines, narrow imports."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ppdnn import ciphers, claims
from ppdnn.stages import figures as figures_stage
from ppdnn.stages import key_space as key_space_stage
from ppdnn.stages import tables as tables_stage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_tables import new_run, old_run  # noqa: E402  (run folders of both layouts)

from shipped import ENTRIES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATIONS = ciphers.configurations(ENTRIES)


# ---------------------------------------------------------------- key space
def test_key_space_writes_csv_and_a_markdown_table(tmp_path):
    written = key_space_stage.key_space(tmp_path / "out", [[32, 32], (8, 12)])
    assert set(written) == {"key_space.csv", "key_space.md"}
    table = pd.read_csv(written["key_space.csv"])
    assert set(table["image"]) == {"32x32", "8x12"} and set(table["n"]) == {1024, 96}
    step2 = table[(table["image"] == "32x32") & table["encryption"].str.startswith("step 2 ")]
    assert step2["log10_key_space"].iloc[0] == pytest.approx(3 * 1024 * np.log10(2), abs=0.01)  # 2^(3n)
    md = written["key_space.md"].read_text().splitlines()
    assert md[0].startswith("| image") and len(md) == 2 + len(table)
    assert "924.76" in md[2]


@pytest.mark.parametrize("sizes, message", [
    ([[4097, 8]], "ints in \\[1, 4096\\]"),
    ([[32, 0]], "ints in \\[1, 4096\\]"),
    ([[32.0, 32]], "ints in \\[1, 4096\\]"),
    ([[32]], "pair"),
    ("32x32", "list of 1 to 16"),
    ([], "list of 1 to 16"),
    ([[8, 8]] * 17, "list of 1 to 16"),
    ([[4096, 4096], [1, 1]], "16777217 pixels in all; at most 16777216"),
])
def test_key_space_bounds_are_checked_before_any_work(tmp_path, sizes, message):
    with pytest.raises(ValueError, match=message):
        key_space_stage.key_space(tmp_path / "out", sizes)
    assert not (tmp_path / "out").exists()


def test_key_space_command_line(tmp_path, capsys):
    assert key_space_stage.main(["--out", str(tmp_path), "--size", "16x16"]) == 0
    assert set(pd.read_csv(tmp_path / "key_space.csv")["image"]) == {"16x16"}
    assert key_space_stage.main(["--out", str(tmp_path), "--size", "5000x5000"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ppdnn.stages.key_space: error: each size must be an (H, W) pair of ints in [1, 4096], "
                   "got (5000, 5000)"]
    with pytest.raises(SystemExit):
        key_space_stage.main(["--out", str(tmp_path), "--size", "3y3"])


# ---------------------------------------------------------------- figures
@pytest.mark.parametrize("kwargs, message", [
    ({"photo_size": 30}, "multiple of 4"), ({"photo_size": 4096}, "photo_size must be an int in"),
    ({"per_class": 0}, "per_class must be"), ({"key_seed": -1}, "key_seed must be an int >= 0"),
    ({"key_seed": True}, "key_seed must be"),
])
def test_figures_refuses_bad_values_before_any_work(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        figures_stage.figures(tmp_path / "out", CONFIGURATIONS, **kwargs)
    assert not (tmp_path / "out").exists()


def test_figures_without_cifar_writes_fig1_and_fig4(tmp_path, capsys):
    written = figures_stage.figures(tmp_path / "out", CONFIGURATIONS, key_seed=3, cache_dir=tmp_path / "none", archive=None,
                                    photo_size=32)
    assert set(written) == {"fig1_conventional.png", "fig4_proposed.png"}
    for path in written.values():
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 2 * image.height  # one row of images
    assert "grid skipped" in capsys.readouterr().err


def test_figure_keys_are_the_pipelines_and_distinct_per_configuration():
    keys = figures_stage.keys((32, 32), 0, CONFIGURATIONS)
    assert set(keys) == set(figures_stage.FIG1) | set(figures_stage.FIG4)  # all but plain
    assert all(keys[c.name].fingerprint == ciphers.make_for_configuration(c, 0).fingerprint
               for c in CONFIGURATIONS if c.name in keys)
    photo = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    step2, step23 = keys["pixel"].encrypt(photo), keys["pixel_shuffle"].encrypt(photo)
    assert not np.array_equal(step2, step23)
    # not the same flip mask with a shuffle on top: the configurations' keys are independent
    flips_step2 = step2 != photo
    flips_step23 = np.sort(step23, axis=-1) != np.sort(photo ^ 255, axis=-1)
    assert flips_step2.any() and (flips_step2 != flips_step23).any()
    again = figures_stage.keys((32, 32), 0, CONFIGURATIONS)
    assert np.array_equal(again["pixel"].encrypt(photo), step2)  # reproducible from key_seed


# ---------------------------------------------------------------- tables
@pytest.fixture
def fake_claims(monkeypatch):
    """ppdnn.claims stands in with recording fakes: the stage's contract with it is three calls."""
    seen = {}

    def claims_table(metrics):
        seen["metrics"] = metrics
        return pd.DataFrame({"id": ["1"], "verdict": ["reproduced"]})

    def claims_markdown(table, provenance):
        seen["provenance"] = provenance
        return f"| # | Verdict |\n|---|---|\n| 1 | reproduced |\n\n{provenance}\n"

    def write_claims(out_dir, table, md):
        (Path(out_dir) / "claims.csv").write_text(table.to_csv(index=False))
        (Path(out_dir) / "claims.md").write_text(md)

    for name, fake in (("claims_table", claims_table), ("claims_markdown", claims_markdown),
                       ("write_claims", write_claims)):
        monkeypatch.setattr(claims, name, fake, raising=False)
    return seen


def fifty_five_runs(root) -> list[str]:
    runs = [label_run for _, label_run, _ in tables_stage.paper_tables.TABLE2_ROWS]
    runs += ["step2_client", "step2_adapt_client", "tanaka_client"]
    for i, run in enumerate(runs):
        for seed in range(5):
            new_run(root, run, seed, 0.3 + 0.04 * i + 0.01 * ((7 * seed + 3 * i) % 5), epochs=2)
    return runs


def test_tables_stage_writes_every_output_for_55_runs(tmp_path, fake_claims, capsys):
    runs_dir = tmp_path / "runs"
    runs = fifty_five_runs(runs_dir)
    old_run(runs_dir, "removed_run", 0, 0.9)  # a stale run DVC left behind: not counted
    written = tables_stage.tables(runs_dir, tmp_path / "out", runs, [0, 1, 2, 3, 4], "fast")
    assert list(written) == list(tables_stage.OUTPUTS)
    assert all(path.is_file() and path.stat().st_size > 0 for name, path in written.items() if name != "metrics")
    per_run = {p.stem: json.loads(p.read_text()) for p in written["metrics"].iterdir()}
    assert set(per_run) == set(runs) and all(m["seeds"] == 5 and set(m) == {"test_acc", "sd", "val_acc", "seeds"}
                                             for m in per_run.values())
    metrics = fake_claims["metrics"]
    assert len(metrics) == 55 and "removed_run" not in set(metrics["run"])
    assert metrics["test_acc"].between(0, 1).all()  # fractions for ppdnn.claims
    t2 = pd.read_csv(written["table2.csv"])
    assert (t2["seeds"] == 5).all() and (t2["seed_list"] == "0, 1, 2, 3, 4").all()
    assert "| 0, 1, 2, 3, 4" in written["table2.md"].read_text()
    assert "seeds: [0, 1, 2, 3, 4]" in fake_claims["provenance"]
    page = written["curves.html"].read_text()
    assert "11 configurations, 55 runs" in page and "label-smoothed (ε = 0.1)" in page
    with Image.open(written["curves.png"]) as image:
        assert image.width > image.height
    assert "no results yet" not in capsys.readouterr().err


def test_tables_stage_names_missing_runs_and_refuses_another_profile(tmp_path, fake_claims, capsys):
    runs_dir = tmp_path / "runs"
    new_run(runs_dir, "plain", 0, 0.5)
    tables_stage.tables(runs_dir, tmp_path / "out", ["plain", "etc_cloud"], [0, 1], "fast")
    assert "no results yet for 3 runs: plain-s1, etc_cloud-s0, etc_cloud-s1" in capsys.readouterr().err
    assert "not run" in (tmp_path / "out" / "table2.md").read_text()
    with pytest.raises(ValueError, match="holds runs of profile \\['fast'\\], not 'quick'"):
        tables_stage.tables(runs_dir, tmp_path / "out2", ["plain"], [0], "quick")
    for runs, seeds, message in ((["plain", "plain"], [0], "distinct"), ([], [0], "non-empty list of run names"),
                                 (["plain"], [-1], "non-negative ints"), (["plain"], [True], "non-negative")):
        with pytest.raises(ValueError, match=message):
            tables_stage.tables(runs_dir, tmp_path / "out3", runs, seeds, "fast")
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()


def test_tables_command_line_reads_runs_seeds_and_profile_from_params(tmp_path, fake_claims, capsys):
    runs_dir = tmp_path / "runs"
    new_run(runs_dir, "plain", 0, 0.5)
    new_run(runs_dir, "plain", 1, 0.52)
    params = tmp_path / "params.yaml"
    params.write_text("profile: fast\nseeds: [0, 1]\nkey_seed: 0\n"
                      "runs:\n  - {name: plain, cipher: plain, adaptation: none, augment: cloud}\n")
    assert tables_stage.read_plan(params) == (["plain"], [0, 1], "fast")
    assert tables_stage.main(["--params", str(params), "--runs-dir", str(runs_dir), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "table2.md").is_file()
    capsys.readouterr()
    params.write_text("profile: fast\nruns: [plain]\n")
    assert tables_stage.main(["--params", str(params), "--runs-dir", str(runs_dir), "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err.strip() == f"ppdnn.stages.tables: error: {params} has no seeds"
    (runs_dir / "plain-s0" / "metrics.json").write_text(json.dumps({"test_acc": float("nan")}))
    params.write_text("profile: fast\nruns: [plain]\nseeds: [0]\n")
    assert tables_stage.main(["--params", str(params), "--runs-dir", str(runs_dir), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "plain-s0/metrics.json: test_acc must be a finite fraction" in err[0]


def test_the_real_claims_module_takes_what_the_stage_gives(tmp_path):
    runs_dir = tmp_path / "runs"
    runs = fifty_five_runs(runs_dir)
    written = tables_stage.tables(runs_dir, tmp_path / "out", runs, [0, 1, 2, 3, 4], "fast")
    assert written["claims.md"].read_text().strip() and len(pd.read_csv(written["claims.csv"])) > 0


# ---------------------------------------------------------------- imports
@pytest.mark.parametrize("stage, allowed", [
    ("tables", {"tables", "claims", "curves", "markdown", "paper", "files", "errors"}),
    ("figures", {"figures", "ciphers", "plan", "files", "errors"}),
    ("key_space", {"ciphers", "markdown", "files", "errors"}),
])
def test_each_stage_imports_only_what_it_runs(stage, allowed):
    code = (f"import sys, ppdnn.stages.{stage}; "
            "print(' '.join(sorted({m.split('.')[1] for m in sys.modules if m.startswith('ppdnn.')})), "
            "'torch' in sys.modules, 'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         check=True).stdout.split()
    modules, torch_loaded, pyplot_loaded = set(out[:-2]), out[-2], out[-1]
    assert modules - {"stages"} <= allowed, modules
    assert (torch_loaded, pyplot_loaded) == ("False", "False")
