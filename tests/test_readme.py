"""The README's tables and verdicts are the committed results files, never typed: each
included block equals its file (`python -m ppdnn.readme` copies them in)."""
import re
from pathlib import Path

from ppdnn import readme

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_shows_the_committed_results_files_verbatim():
    text = (ROOT / "README.md").read_text()
    sources = readme.included(text)
    assert {"results/quick/table2.md", "results/quick/table3.md", "results/quick/claims.md",
            "results/quick/security.md", "results/key_space.md"} <= set(sources)
    for source in sources:
        start, end = readme.readme_block(text, source)
        assert text[start:end] == (ROOT / source).read_text(), \
            f"README block of {source} is stale: run `python -m ppdnn.readme`"


def test_update_readme_replaces_each_block_with_its_file(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "a.md").write_text("| new |\n")
    path = tmp_path / "README.md"
    path.write_text("intro\n<!-- include: r/a.md -->\n| old |\n<!-- end include -->\nend\n")
    assert readme.update_readme(path, root=tmp_path) == ["r/a.md"]
    assert path.read_text() == "intro\n<!-- include: r/a.md -->\n| new |\n<!-- end include -->\nend\n"


def test_no_placeholder_is_left_in_the_readme():
    assert not re.findall(r"@@\w+@@", (ROOT / "README.md").read_text())


# ---------------------------------------------------------------- prose against the files
def readme_text() -> str:
    return " ".join((ROOT / "README.md").read_text().split())  # one space for every line break


def test_the_security_prose_states_the_measured_numbers():
    import pandas as pd

    from ppdnn.security import DATASET_ATTACK

    text, table = readme_text(), pd.read_csv(ROOT / "results/quick/security.csv")

    def ssim(configuration, attack):
        return float(table[(table["configuration"] == configuration) & (table["attack"] == attack)]["ssim"].iloc[0])

    assert (f"mean SSIM {ssim('pixel', 'fold'):.2f} for step 2, {ssim('pixel_shuffle', 'fold'):.2f} "
            f"for steps 2+3") in text
    advanced = "advanced (Chang & Case), true first pixel"
    assert f"advanced attack reaches {ssim('pixel', advanced):.2f} and {ssim('pixel_shuffle', advanced):.2f}" in text
    per_image = table[table["configuration"].isin(["tanaka", "etc", "chaotic_rc4"])
                      & ~table["attack"].isin(["chosen plaintext", DATASET_ATTACK])]
    bound = float(re.search(r"these per-image attacks leave SSIM at or below (0\.\d+)", text).group(1))
    assert per_image["ssim"].max() <= bound < per_image["ssim"].max() + 0.01
    dataset = table[table["attack"] == DATASET_ATTACK]
    pixel = dataset[dataset["configuration"].isin(["pixel", "pixel_shuffle"])]
    exact_from = pixel[pixel["exact_images"] == 1].groupby("configuration")["ciphertexts_used"].min().max()
    confident_from = pixel[pixel["confident"]].groupby("configuration")["ciphertexts_used"].min().max()
    assert f"From {exact_from:,} encrypted training images the data-set attack recovers every key bit" in text
    assert f"from {confident_from:,} it also says so with confidence" in text
    low, high = re.search(r"from all 50,000 it takes (\d+)(?:-(\d+))? s", text).groups()
    low, high = int(low), int(high or low)
    seconds = pixel[pixel["ciphertexts_used"] == 50_000]["seconds"]
    assert low <= round(seconds.min()) and round(seconds.max()) <= high
    blocks = dataset[dataset["configuration"].isin(["tanaka", "etc", "chaotic_rc4"])]
    assert (blocks["positions"] < 0.05).all() and (blocks["exact_images"] == 0).all()
    assert blocks["ssim"].max() < 0.1 and "(mean SSIM below 0.1)" in text


def test_the_learned_attacks_prose_states_their_budget_and_results():
    import pandas as pd

    from ppdnn import learned_attacks

    text, table = readme_text(), pd.read_csv(ROOT / "results/quick/security_learned.csv")
    gan, itn = (table[table["attack"] == name] for name in (learned_attacks.GAN, learned_attacks.ITN))
    budget = (f"trains each attack for {gan['epochs'].iloc[0]:g} epoch(s) (GAN) and {itn['epochs'].iloc[0]:g} "
              f"(ITN) over {int(gan['train_images'].iloc[0]):,} images")
    assert budget in text
    assert f"GAN-Attack reaches a mean SSIM of at most {gan['ssim'].max():.2f}" in text
    assert f"ITN-Attack at most {itn['ssim'].max():.2f}" in text
    assert table["under_trained"].all() and "labelled under-trained" in text and "are under-trained" in text
    assert f"the attacks' training takes {table['seconds'].sum() / 60:.1f} min in all" in text


def test_the_studies_prose_states_what_the_validation_split_and_the_second_key_gave():
    import pandas as pd

    text = readme_text()
    choices = pd.read_csv(ROOT / "results/quick/studies/choices.csv")
    means = choices.groupby(["run", "setting"])["val_acc"].mean() * 100
    gaps = {run: means[run, "bn_relu=True"] - means[run, "bn_relu=False"]
            for run in ("step23_adapt_cloud", "step2_adapt_cloud")}
    assert all(gap > 0 for gap in gaps.values())  # "it stands"
    assert (f"BN+ReLU ahead by {gaps['step23_adapt_cloud']:.1f} pp for steps 2+3 and "
            f"{gaps['step2_adapt_cloud']:.1f} pp for step 2") in text
    plain = means["plain"]
    best, profile = plain.idxmax(), "batch_size=64, lr=0.05"
    assert best != profile and best == "batch_size=32, lr=0.025"  # "do not clearly stand"
    assert (f"validation picks batch 32 at lr 0.025 ({plain[best]:.2f}%) over the profile's batch 64 at "
            f"lr 0.05 ({plain[profile]:.2f}%), by {plain[best] - plain[profile]:.1f} pp") in text
    spread = choices[choices["run"] == "plain"].groupby("setting")["val_acc"].agg(lambda v: v.max() - v.min()).max()
    assert f"(up to {100 * spread:.1f} pp)" in text

    keys = pd.read_csv(ROOT / "results/quick/studies/keys.csv")
    worst = keys.loc[keys["key_difference"].abs().idxmax()]
    assert f"at most {100 * abs(worst['key_difference']):.2f} pp ({worst['run']}, seed {worst['seed']})" in text
    assert f"mean |difference| {100 * keys['key_difference'].abs().mean():.2f} pp" in text
    by_run = keys.groupby("run").agg(mean_abs=("key_difference", lambda d: 100 * d.abs().mean()),
                                     yardstick=("seed_sd", lambda v: 100 * 2 ** 0.5 * v.iloc[0]))
    above = by_run[by_run["mean_abs"] > by_run["yardstick"]]
    assert list(above.index) == ["etc_cloud"]  # "matters for EtC, not clearly elsewhere"
    etc, steps23 = by_run.loc["etc_cloud"], by_run.loc["step23_cloud"]
    assert (f"For EtC the mean |difference| ({etc['mean_abs']:.2f} pp) is {etc['mean_abs'] / etc['yardstick']:.1f} "
            f"times that ({etc['yardstick']:.2f} pp)") in text
    assert f"({steps23['mean_abs']:.2f} against {steps23['yardstick']:.2f} pp)" in text


def test_the_budget_study_status_is_regenerated_from_the_long_runs():
    """The README's status of the budget study (an include of results/long/status.md, checked
    verbatim above) is what ppdnn.budgets computes from the committed runs now."""
    from ppdnn import budgets

    status = (ROOT / "results/long/status.md").read_text()
    assert status == budgets.progress_markdown(ROOT / "results/long", ROOT / "results/quick/runs")
    assert "results/long/status.md" in readme.included((ROOT / "README.md").read_text())


def budget_prose() -> dict[str, str]:
    """The README's sentences on what the budget changes, from results/budgets/*.csv; each
    asserts the qualitative statement its sentence makes."""
    import pandas as pd

    c = pd.read_csv(ROOT / "results/budgets/comparison.csv", dtype={"seeds_quick_all": str, "seeds_long_all": str}
                    ).set_index("id")
    by_epoch = pd.read_csv(ROOT / "results/budgets/epochs.csv").set_index("id")
    claim = c["claim_id"].astype(str)
    lead, plain = c.loc[claim.isin(["5", "6", "7"]), "change_pp"], c.loc[claim == "1", "change_pp"]
    assert (lead > 0).all() and (plain < 0).all()  # "larger in every row", "smaller in every row"
    assert (by_epoch.loc[lead.index, "6"] > by_epoch.loc[lead.index, "3"]).all()  # "sixth than third"
    steps = by_epoch.loc[lead.index, ["3", "4", "5", "6"]].diff(axis=1).iloc[:, 1:]
    assert (steps < 0).any().any()  # "not at every epoch in between"
    assert "tanaka_cloud" in " ".join(c.loc[["5a", "5b", "5c", "5d"], "comparison"])  # "share runs"
    # "claim 12's rows are claim 1's plus claim 5's": plain - tanaka = (plain - step2) + (step2 - tanaka)
    assert abs(c.loc["12a", "change_pp"] - c.loc["1a", "change_pp"] - c.loc["5a", "change_pp"]) < 1e-3
    row, other = c.loc["10a"], c.loc["10b"]
    assert row["ours_pp_long"] < row["ours_pp_quick"] < 0  # "further from the paper" (its effect is > 0)
    common = sorted(set(c["seeds_long_all"].iloc[0].split(",")) & set(c["seeds_quick_all"].iloc[0].split(",")))
    flagged = list(c.index[c["effect_changes"]])

    def change(r) -> str:
        return f"{r['change_pp']:+.2f} pp [95% CI {r['change_low']:+.2f}, {r['change_high']:+.2f}]"

    return {"SEEDS": f"seeds {', '.join(common[:-1])} and {common[-1]}",
            "LEAD": f"{lead.min():+.2f} to {lead.max():+.2f}",
            "PLAIN": f"{plain.max():+.2f} to {plain.min():+.2f}",
            "CLIENT": f"{row['ours_pp_quick']:+.2f} pp at quick, {row['ours_pp_long']:+.2f} pp at long, "
                      f"a change of {change(row)}",
            "CLIENT_B": change(other),
            "FLAGGED": f"decides {len(flagged)} ({', '.join(flagged)}) of the changes" if flagged
                       else "decides none of the changes"}


def test_the_budget_prose_states_the_comparison():
    text = readme_text()
    for value in budget_prose().values():
        assert value in text, value
    assert "results/budgets/budgets.md" in readme.included(text) and "results/budgets/headline.md" in readme.included(text)


def test_the_headline_of_both_budgets_counts_each_budgets_claims_table():
    import pandas as pd

    headline = (ROOT / "results/budgets/headline.md").read_text()
    table = pd.read_csv(ROOT / "results/quick/claims.csv", dtype={"seeds": str}).drop_duplicates("claim_id")
    counts = table["verdict"].value_counts()
    assert (f"quick (seeds {table['seeds'].iloc[0]}): {counts.get('reproduced', 0)} reproduced, "
            f"{counts.get('contradicted', 0)} contradicted, {counts.get('inconclusive', 0)} inconclusive;") in headline


def test_the_budget_study_is_what_its_command_computes_from_the_committed_runs(tmp_path):
    from ppdnn import budgets, plan

    runs = [r.name for r in plan.runs(plan.read(ROOT / "params.yaml"), ROOT / "params.yaml")]
    written = budgets.write_study(ROOT / "results", ["quick", "long"], runs, tmp_path)
    for name, path in written.items():
        assert path.read_bytes() == (ROOT / "results/budgets" / name).read_bytes(), \
            f"results/budgets/{name} is stale: run `python -m ppdnn.budgets compare`"
