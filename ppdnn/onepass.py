"""Tables 2 and 3 in one process: data -> encrypt -> every run x seed -> tables, without DVC.

Made for a lent GPU machine, which has torch but no dvc, papermill or nbclient, and no
network: ``python -m ppdnn.onepass --profile fast --out DIR --archive cifar10.tar.gz --seeds 0``.

It does what the DVC pipeline does for one profile (the data stage, the encrypt stages,
the 11 train stages per seed, the tables stage), with the same functions, the same
training configuration (``profiles.<name>.train`` of params.yaml) and the same keys
(those of the encrypt stage, ``ciphers.make_for_configuration``), and writes exactly the files of
``results/<profile>/`` that those stages write::

    DIR/runs/<run>-s<seed>/{metrics.json, epochs.csv, learning_curves.png}
    DIR/table2.csv  table2.md  table3.csv  table3.md  claims.csv  claims.md  tables.png  curves.html

plus its own record, ``DIR/onepass.log`` (one line per run and a summary, also printed)
and ``DIR/onepass.json`` (the probe, the chosen settings, the GPU, torch, per-run times).
Checkpoints and the data cache go to ``build_dir`` (default ``build/onepass/<profile>``),
never into ``DIR``; a second call with the same settings resumes finished runs from there.

Once the data are decoded (first, because decoding forks worker processes, which is
safe only before CUDA and the compiler's threads start), a throughput probe (about
``probe_seconds``; ``torch.compile`` adds its own compile time on top) measures training
images/s of the profile's configuration on random images, eager and, on CUDA only, with
``torch.compile`` (bf16 autocast and channels_last come with the fast recipe). From those
figures it estimates, for each setting, the time of all runs x epochs x training images,
including evaluation and the compile cost of every model shape, against ``budget_s``
(default 480 s for the whole call, data and probe included). It takes the setting that
trains the most epochs within the budget (the faster one when both fit) and, if even that
one does not fit, cuts *epochs* (never runs), recording the cut in onepass.json, in the
log, in each run's metrics.json (``profile_epochs``) and in the tables' provenance line.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import platform
import sys
import time
import traceback
from pathlib import Path

from . import ciphers, claims, data, errors, experiment, pipeline, tables, train
from .files import atomic_write

DEFAULT_BUDGET_S = 480.0
LOG = "onepass.log"
RECORD = "onepass.json"
# Planning constants: evaluation (forward only) costs about a third of a training image;
# an evaluation graph compiles in about half the time of a training graph, and so does a
# training graph of another model shape after the first (shared kernels); a run has a
# few seconds of fixed cost (model, copies to the device, hashing, figure); the plan
# fills at most SAFETY of the time left; TABLES_S is kept for the tables at the end.
EVAL_COST = 1 / 3
EVAL_COMPILE_FACTOR = 0.5
OTHER_SHAPE_COMPILE = 0.5
RUN_OVERHEAD_S = 2.0
EPOCH_OVERHEAD_S = 0.2
SAFETY = 0.9
TABLES_S = 15.0


class RunsFailed(errors.PpdnnError):
    """Some runs failed (each is in the log and onepass.json); the others and the tables were written."""


# ---------------------------------------------------------------- settings
def profile_training(params: dict, profile: str) -> tuple[str, dict]:
    """The profile's recipe and its other ``TrainConfig`` settings (``profiles.<name>.train``)."""
    pipeline.profile_settings(params, profile)  # a bad or unknown profile fails here
    settings = dict(params["profiles"][profile]["train"])
    return settings.pop("recipe", "paper"), settings


def train_config(recipe: str, settings: dict, **explicit) -> "train.TrainConfig":
    """``pipeline.train_config``'s configuration, with ``explicit`` settings on top (run,
    seed, and this runner's overrides: epochs after a cut, compile, device)."""
    return train.TrainConfig.from_recipe(recipe, **{**settings, **explicit})


# ---------------------------------------------------------------- log
class Log:
    """Lines to stdout and to ``<out>/onepass.log`` (appended, flushed at once)."""

    def __init__(self, path: Path | None):
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(line + "\n")


# ---------------------------------------------------------------- probe
def configure_dynamo() -> dict:
    """Each run builds a new model and each model compiles a training and an evaluation
    graph: more cache entries per code object than dynamo's default limit (8), beyond
    which it silently falls back to eager. Raise the limits (their names differ between
    torch versions), and keep shapes static: the training (512) and evaluation (1000)
    batches would otherwise turn the batch dimension dynamic after the first change."""
    import torch._dynamo

    cfg, done = torch._dynamo.config, {}
    for names, value in ((("recompile_limit", "cache_size_limit"), 64),
                         (("accumulated_recompile_limit", "accumulated_cache_size_limit"), 1024)):
        for name in names:
            if hasattr(cfg, name):
                setattr(cfg, name, max(int(getattr(cfg, name)), value))
                done[name] = getattr(cfg, name)
                break
    if hasattr(cfg, "automatic_dynamic_shapes"):
        cfg.automatic_dynamic_shapes = False
        done["automatic_dynamic_shapes"] = False
    return done


def probe_throughput(base: "train.TrainConfig", seconds: float = 20.0, compile_modes=None, log=print) -> dict:
    """Training images/s of ``base`` (the profile's configuration: recipe, width, batch,
    device) on random images.

    One entry per ``compile`` setting (``[False, True]`` on CUDA, ``[False]`` on CPU):
    ``first_s``: a fresh model's first short pass (cuDNN autotuning, compilation),
    ``compile_s``: what that pass cost beyond steady speed (the first compile of a shape),
    ``recompile_s``: the same for a second fresh model (the compile caches are warm, as
    for every later run of that shape), ``images_per_s``: steady speed. ``seconds`` is
    shared by the settings; compile time comes on top of it.
    """
    import torch

    dev = train.resolve_device(base.device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True  # as train.run does
    modes = list(compile_modes) if compile_modes is not None else ([False, True] if cuda else [False])
    if not cuda:
        modes = [False]
    bs = base.batch_size
    result = {"device": train.device_description(dev), "recipe": base.recipe, "width": base.width,
              "batch_size": bs, "amp": base.amp and cuda, "channels_last": base.channels_last,
              "seconds": float(seconds), "candidates": {}}
    if not cuda:
        result["note"] = "CPU: torch.compile not measured (the recipes compile on CUDA only)"
    share = max(float(seconds), 0.0) / len(modes)
    for mode in modes:
        key = "compile" if mode else "eager"
        config = dataclasses.replace(base, device=dev.type, compile=bool(mode))
        start = time.perf_counter()
        try:
            warm_n = 4 * bs
            rows = train.measure_speed(config, n_images=warm_n, epochs=2)
            rough = rows[1]["images_per_s"]
            left = share - (time.perf_counter() - start)
            # a second fresh model, sized so that its two passes fill what is left of the
            # share (at least 3 s, or the share: compilation may have used it all up)
            batches = int(max(left, min(share, 3.0)) * rough / 2 / bs)
            n = bs * min(max(batches, 4), max(4, 100_000 // bs))
            rows2 = train.measure_speed(config, n_images=n, epochs=2)
            speed = rows2[1]["images_per_s"]
            entry = {"images_per_s": speed, "first_s": rows[0]["seconds"],
                     "compile_s": max(rows[0]["seconds"] - warm_n / speed, 0.0),
                     "recompile_s": max(rows2[0]["seconds"] - n / speed, 0.0),
                     "images_timed": n, "wall_s": time.perf_counter() - start}
        except Exception as exc:  # a compiler failure must not end the call: eager remains
            entry = {"error": f"{type(exc).__name__}: {str(exc)[:300]}",
                     "wall_s": time.perf_counter() - start}
        result["candidates"][key] = entry
        if "error" in entry:
            log(f"probe {key}: FAILED ({entry['error']})")
        else:
            log(f"probe {key}: {entry['images_per_s']:.0f} images/s (recipe {base.recipe}, width "
                f"{base.width}, batch {bs}, {result['device']}); first pass {entry['first_s']:.1f} s, "
                f"compile cost {entry['compile_s']:.1f} s, again on a fresh model {entry['recompile_s']:.1f} s")
    if not cuda:
        log(f"probe: {result['note']}")
    return result


# ---------------------------------------------------------------- plan
def estimate_seconds(candidate: dict, jobs: list[dict], epochs: int, n_train: int, n_test: int,
                     batch_size: int, drop_last: bool, compiled: bool, eval_every_epoch: bool = True) -> float:
    """Estimated seconds of every job (run x seed) at ``epochs`` with one probe candidate."""
    speed = candidate["images_per_s"]
    steps = n_train // batch_size if drop_last else math.ceil(n_train / batch_size)
    per_epoch = steps * batch_size / speed + EPOCH_OVERHEAD_S
    evaluation = EVAL_COST * n_test / speed
    total = 0.0
    for job in jobs:
        total += epochs * per_epoch + (epochs if eval_every_epoch else 1) * evaluation + RUN_OVERHEAD_S
        if job.get("tta"):
            total += 2 * EVAL_COST * n_test / speed
    if compiled:
        # The probe compiled the plain model's training graph already (the caches are warm);
        # left to pay: its evaluation graph, the training and evaluation graphs of the other
        # model shapes (they share most kernels with it: OTHER_SHAPE_COMPILE of a cold
        # compile), and per run what the probe's second, fresh model cost (recompile_s),
        # for its training and its evaluation graph.
        shapes = len({job["adaptation"] for job in jobs} | {"none"})
        per_model = 1 + EVAL_COMPILE_FACTOR
        total += candidate["compile_s"] * (EVAL_COMPILE_FACTOR + (shapes - 1) * OTHER_SHAPE_COMPILE * per_model)
        total += len(jobs) * per_model * candidate["recompile_s"]
    return total


def plan(probe: dict, jobs: list[dict], epochs: int, n_train: int, n_test: int, batch_size: int,
         drop_last: bool, seconds_left: float | None, cuda: bool, eval_every_epoch: bool = True) -> dict:
    """Choose compile on/off and the epochs to train so that every job fits ``seconds_left``.

    The setting that fits the most epochs (at most ``epochs``) wins; between equals, the
    faster. ``seconds_left=None`` means no budget: the faster setting at full epochs.
    Epochs are cut, never jobs; at least one epoch is always trained.
    """
    usable = None if seconds_left is None else SAFETY * (seconds_left - TABLES_S)
    options = []
    for key, candidate in probe["candidates"].items():
        if "error" in candidate:
            continue
        compiled = key == "compile"
        at = lambda e, c=candidate, k=compiled: estimate_seconds(c, jobs, e, n_train, n_test, batch_size,
                                                                 drop_last, k, eval_every_epoch)
        fit = epochs
        if usable is not None:
            while fit > 1 and at(fit) > usable:
                fit -= 1
        options.append({"compile": compiled, "epochs": fit, "estimated_s": at(fit),
                        "estimated_full_s": at(epochs)})
    if not options:
        raise RuntimeError("the throughput probe failed for every setting; see the log")
    best = max(options, key=lambda o: (o["epochs"], -o["estimated_s"]))
    chosen = {"compile": best["compile"] if cuda else None, "epochs": best["epochs"],
              "profile_epochs": epochs, "epochs_cut": best["epochs"] < epochs,
              "estimated_s": round(best["estimated_s"], 1),
              "seconds_left": None if seconds_left is None else round(seconds_left, 1),
              "options": [{k: (round(v, 1) if isinstance(v, float) else v) for k, v in o.items()} for o in options]}
    if chosen["epochs_cut"]:
        chosen["cut_reason"] = (f"{epochs} epochs need about {best['estimated_full_s']:.0f} s, "
                                f"{seconds_left:.0f} s left of the budget")
    if usable is not None and best["estimated_s"] > usable:
        chosen["warning"] = "even one epoch of every run does not fit the budget"
    return chosen


# ---------------------------------------------------------------- data
def prepare_data(cache_dir: Path, archive, params: dict, expected_counts, log) -> tuple[dict, float]:
    start = time.perf_counter()
    manifest_path = cache_dir / data.MANIFEST
    reuse = manifest_path.is_file()
    if reuse and archive is not None:
        manifest = data.read_manifest(cache_dir)
        reuse = manifest.get("source_sha256") == data.sha256_of(archive)
    if reuse:
        log(f"data: reusing the cache in {cache_dir}")
    elif archive is not None:
        data.prepare(source="archive", archive=archive, cache_dir=cache_dir, expected_counts=expected_counts)
    else:
        cfg = params.get("data") or {}
        data.prepare(source=cfg.get("source", "auto"), archive=cfg.get("archive"), root="data/raw",
                     cache_dir=cache_dir, expected_counts=expected_counts)
    plain = data.load(cache_dir)
    return plain, time.perf_counter() - start


def _encrypt_all(plain: dict, runs: list[dict], params: dict, log) -> tuple[dict, float]:
    """One key per cipher configuration the runs use; the encrypted sets in memory."""
    start = time.perf_counter()
    key_seed = int(params["key_seed"])
    shape = plain["train_images"].shape[1:3]
    out = {}
    for name in dict.fromkeys(r["cipher"] for r in runs):
        cipher = ciphers.make_for_configuration(name, key_seed, shape=shape)  # the encrypt stage's key
        enc = {"cipher": cipher, "train_labels": plain["train_labels"], "test_labels": plain["test_labels"],
               "test_images": cipher.encrypt(plain["test_images"])}
        if any(r["cipher"] == name and r["augment"] != "client" for r in runs):
            enc["train_images"] = cipher.encrypt(plain["train_images"])
        out[name] = enc
    seconds = time.perf_counter() - start
    log(f"encrypt: {len(out)} cipher configurations ({', '.join(out)}) in {seconds:.1f} s")
    return out, seconds


# ---------------------------------------------------------------- one run
def _train_one(run: dict, seed: int, *, recipe: str, settings: dict, overrides: dict, profile_epochs: int,
               profile: str, plain: dict, encrypted: dict, data_source: str, key_seed: int,
               build_dir: Path, out_dir: Path, progress: bool, log) -> dict:
    name = f"{run['name']}-s{seed}"
    enc = encrypted[run["cipher"]]
    config = train_config(recipe, settings, adaptation=run["adaptation"], augment=run["augment"], seed=int(seed),
                          **overrides)
    # what the pipeline's metrics carry: the train stage's profile, run, cipher, and what
    # experiment.train_configuration adds for an in-memory key (key_seed, data_source,
    # key_fingerprint); then this runner's own marks
    extra = {"key_seed": key_seed, "data_source": data_source, "profile": profile, "run": run["name"],
             "cipher": run["cipher"], "runner": "ppdnn.onepass", "profile_epochs": int(profile_epochs)}
    extra["key_fingerprint"] = enc["cipher"].fingerprint
    run_dir = build_dir / "runs" / name
    inputs = experiment.inputs_for(run["augment"], plain, enc)
    kwargs = dict(out_dir=run_dir, extra=extra, class_names=data.CLASSES, progress=progress)
    try:
        metrics = train.run(config, **inputs, **kwargs)
    except train.CheckpointError as exc:  # a checkpoint of other settings in our own build folder
        log(f"{name}: {exc}; starting afresh")
        metrics = train.run(config, **inputs, resume=False, **kwargs)
    experiment.publish(run_dir, out_dir / "runs" / name,
             f"{run['cipher']} | adaptation {run['adaptation']} | augment in {run['augment']} | {recipe}")
    return metrics


# ---------------------------------------------------------------- tables
def _write_tables(out_dir: Path, profile: str, names: list[str], seeds: list[int], note: str) -> dict:
    runs_dir = out_dir / "runs"
    metrics = tables.collect_metrics(runs_dir, names, seeds)
    t2, t3 = tables.make_tables(metrics)
    prov = tables.provenance(metrics) + (f" {note}" if note else "")
    md2, md3 = tables.tables_markdown(t2, t3, prov)
    tables.write_tables(out_dir, t2, t3, md2, md3)
    out = {"table2": md2, "table3": md3, "provenance": prov}
    table = claims.claims_table(metrics)  # claims.csv/.md, as the tables stage writes them
    out["claims"] = claims.claims_markdown(table, prov)
    claims.write_claims(out_dir, table, out["claims"])
    tables.plot_tables(t2, t3, out_dir / "tables.png")
    curves = tables.read_curves(runs_dir, names, seeds)
    tables.curves_html(curves, out_dir / "curves.html", f"Training curves, profile {profile}")
    return out


def _provenance_note(chosen: dict, budget_s) -> str:
    """What the tables' provenance line adds: this runner, compile, and any epoch cut."""
    compiled = "n/a on CPU" if chosen["compile"] is None else ("on" if chosen["compile"] else "off")
    note = f"Run in one process by ppdnn.onepass (torch.compile {compiled})."
    if chosen["epochs_cut"]:
        note += (f" Epochs cut from {chosen['profile_epochs']} to {chosen['epochs']} to fit the "
                 f"{budget_s or 0:.0f} s budget.")
    return note


def _write_record(path: Path, record: dict) -> None:
    text = json.dumps(record, indent=2, default=str) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


# ---------------------------------------------------------------- entry point
def run_all(params: dict, profile: str, out_dir, archive=None, seeds=None, probe_seconds: float = 20.0,
            budget_s: float | None = DEFAULT_BUDGET_S, build_dir=None, data_cache=None,
            compile: str = "auto", device: str | None = None, expected_counts=data.CIFAR10_COUNTS,
            progress: bool = False, keep_going: bool = True) -> dict:
    """Data -> encrypt -> every run of ``params["runs"]`` x ``seeds`` -> Tables 2 and 3, in this process.

    ``out_dir`` receives the layout of ``results/<profile>/`` plus onepass.log/json;
    ``build_dir`` (default ``build/onepass/<profile>``) the checkpoints and, unless
    ``data_cache`` says otherwise, the data cache (``<build_dir>/data``; reused when it
    holds the same archive). ``seeds``: default ``params["seeds"]``. ``compile``:
    ``auto`` (the probe decides), ``on`` or ``off`` (CUDA only). ``budget_s``: seconds
    for the whole call (``None`` or 0: no budget, no cut). ``device`` overrides the
    profile's. ``keep_going``: a failed run is logged and the others go on; the call
    raises at the end. Returns the record written to onepass.json.
    """
    import torch

    t0 = time.perf_counter()
    if compile not in ("auto", "on", "off"):
        raise ValueError(f"compile must be 'auto', 'on' or 'off', got {compile!r}")
    budget_s = float(budget_s) if budget_s else None
    recipe, settings = profile_training(params, profile)
    # the profile's configuration for a plain run (what the probe measures); a bad setting fails here
    base = train_config(recipe, settings, adaptation="none", augment="cloud", seed=0,
                        **({"device": device} if device else {}))
    device = base.device
    pipeline.require_device(device, profile)
    seeds = [int(s) for s in (seeds if seeds is not None else params.get("seeds", [0]))]
    runs = list(params["runs"])
    names = [r["name"] for r in runs]
    out_dir = Path(out_dir)
    build_dir = Path(build_dir) if build_dir is not None else Path("build") / "onepass" / profile
    data_cache = Path(data_cache) if data_cache is not None else build_dir / "data"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / LOG).unlink(missing_ok=True)
    log = Log(out_dir / LOG)
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    record = {"profile": profile, "recipe": recipe, "settings": settings, "seeds": seeds, "runs": names,
              "torch": torch.__version__, "cuda": torch.version.cuda if cuda else None,
              "python": platform.python_version(), "budget_s": budget_s,
              "out_dir": str(out_dir), "build_dir": str(build_dir), "timings": {}, "results": []}
    log(f"ppdnn.onepass: profile {profile}, {len(runs)} runs x seeds {seeds}, device {device}, "
        f"torch {torch.__version__}, budget {budget_s or 'none'} s")

    # 1. data first: decoding forks worker processes, which is safe only before CUDA and
    #    torch.compile's threads start
    archive = Path(archive) if archive is not None else None
    plain, seconds = prepare_data(data_cache, archive, params, expected_counts, log)
    dev = train.resolve_device(device)
    record["device"] = train.device_description(dev)
    record["gpu"] = torch.cuda.get_device_name(dev) if cuda else None
    manifest = plain["manifest"]
    record["data"] = {"source": manifest["source"], "source_path": manifest.get("source_path"),
                      "source_sha256": manifest.get("source_sha256"), "cache_dir": str(data_cache),
                      "train_images": int(len(plain["train_images"])), "test_images": int(len(plain["test_images"]))}
    record["timings"]["data_s"] = round(seconds, 2)
    log(f"data: {manifest['source']} ({manifest.get('source_path')}), {len(plain['train_images'])} training and "
        f"{len(plain['test_images'])} test images in {seconds:.1f} s")

    # 2. throughput probe, on random images
    t = time.perf_counter()
    if cuda and compile != "auto":
        modes = [compile == "on"]
    else:
        modes = None
    if cuda and compile != "off":
        record["dynamo"] = configure_dynamo()
    probe = probe_throughput(base, probe_seconds, compile_modes=modes, log=log)
    record["probe"] = probe
    record["timings"]["probe_s"] = round(time.perf_counter() - t, 2)
    encrypted, seconds = _encrypt_all(plain, runs, params, log)
    record["timings"]["encrypt_s"] = round(seconds, 2)

    # 3. plan: compile or not, epochs within the budget
    n_train = base.train_subset or len(plain["train_images"])
    n_test = base.test_subset or len(plain["test_images"])
    jobs = [{"adaptation": r["adaptation"], "tta": base.eval_tta and r["augment"] != "client"}
            for r in runs for _ in seeds]
    left = None if budget_s is None else budget_s - (time.perf_counter() - t0)
    chosen = plan(probe, jobs, base.epochs, n_train, n_test, base.batch_size, base.drop_last, left, cuda,
                  getattr(base, "eval_every_epoch", True))
    record["chosen"] = chosen
    epochs, compile_ = chosen["epochs"], chosen["compile"]
    log(f"plan: compile {'n/a (CPU)' if compile_ is None else ('on' if compile_ else 'off')}, {epochs} epochs, "
        f"{len(jobs)} runs x {n_train} training images, estimated {chosen['estimated_s']:.0f} s"
        + ("" if left is None else f" of {left:.0f} s left"))
    if chosen["epochs_cut"]:
        log(f"plan: EPOCHS CUT from {chosen['profile_epochs']} to {epochs}: {chosen['cut_reason']}")
    if "warning" in chosen:
        log(f"plan: WARNING {chosen['warning']}")

    # 4. the runs
    train_one = functools.partial(
        _train_one, recipe=recipe, settings=settings, profile_epochs=base.epochs, profile=profile, plain=plain,
        encrypted=encrypted, data_source=manifest["source"], key_seed=int(params["key_seed"]),
        build_dir=build_dir, out_dir=out_dir, progress=progress, log=log)
    t_train = time.perf_counter()
    failures = []
    total_runs = len(runs) * len(seeds)
    i = 0
    for seed in seeds:
        for run in runs:
            i += 1
            name = f"{run['name']}-s{seed}"
            t = time.perf_counter()
            entry = {"name": name, "run": run["name"], "seed": seed}
            try:
                overrides = {"epochs": epochs, "device": device}
                if compile_ is not None:
                    overrides["compile"] = compile_
                try:
                    metrics = train_one(run, seed, overrides=overrides)
                except Exception:
                    if not compile_:
                        raise
                    log(f"{name}: failed with torch.compile; this and every later run without it:\n"
                        f"{traceback.format_exc()}")
                    entry["compile_failed"] = True
                    compile_ = False
                    chosen["compile_off_from"] = name
                    metrics = train_one(run, seed, overrides={**overrides, "compile": False})
            except Exception as exc:
                if not keep_going:
                    raise
                entry.update(error=f"{type(exc).__name__}: {exc}", wall_s=round(time.perf_counter() - t, 2))
                failures.append(name)
                log(f"[{i}/{total_runs}] {name}: FAILED after {entry['wall_s']:.1f} s: {entry['error']}\n"
                    f"{traceback.format_exc()}")
            else:
                entry.update(test_acc=metrics["test_acc"], test_acc_tta=metrics.get("test_acc_tta"),
                             wall_s=round(time.perf_counter() - t, 2), train_wall_s=round(metrics["wall_time_s"], 2),
                             images_per_s=round(metrics["images_per_s"], 1), epochs=metrics["epochs"],
                             train_images=metrics["train_images"], compile=metrics["config"]["compile"] and cuda)
                tta = "" if entry["test_acc_tta"] is None else f" (flip TTA {entry['test_acc_tta']:.4f})"
                log(f"[{i}/{total_runs}] {run['name']} seed {seed}: test_acc {entry['test_acc']:.4f}{tta}, "
                    f"{entry['wall_s']:.1f} s ({entry['train_wall_s']:.1f} s training), "
                    f"{entry['images_per_s']:.0f} images/s")
            record["results"].append(entry)
            record["timings"]["train_s"] = round(time.perf_counter() - t_train, 2)
            record["timings"]["total_s"] = round(time.perf_counter() - t0, 2)
            _write_record(out_dir / RECORD, record)  # a partial record survives a killed call

    # 5. tables
    t = time.perf_counter()
    note = _provenance_note(chosen, budget_s)
    done = [r for r in record["results"] if "error" not in r]
    if done:
        record["tables"] = _write_tables(out_dir, profile, names, seeds, note)
        log(record["tables"]["table2"].rstrip())
        log(record["tables"]["table3"].rstrip())
    record["timings"]["tables_s"] = round(time.perf_counter() - t, 2)

    # 6. summary
    total = time.perf_counter() - t0
    images = sum(r["train_images"] * r["epochs"] for r in done)
    epoch_s = sum(r["train_wall_s"] for r in done)
    record["timings"]["total_s"] = round(total, 2)
    record["images_trained"] = images
    record["images_per_s"] = {"training": round(images / epoch_s, 1) if epoch_s else None,
                              "end_to_end": round(images / total, 1) if total else None}
    record["within_budget"] = None if budget_s is None else total <= budget_s
    record["failures"] = failures
    _write_record(out_dir / RECORD, record)
    log(f"summary: {len(done)}/{total_runs} runs, total wall time {total:.1f} s"
        + ("" if budget_s is None else f" (budget {budget_s:.0f} s, {'within' if total <= budget_s else 'OVER'})")
        + f"; {images} training images, {record['images_per_s']['training'] or 0:.0f} images/s training, "
        f"{record['images_per_s']['end_to_end'] or 0:.0f} images/s end to end; timings {record['timings']}")
    if failures:
        raise RunsFailed(f"{len(failures)} run(s) failed: {', '.join(failures)} (see {out_dir / LOG})")
    return record


def tables_only(params: dict, profile: str, out_dir, seeds=None) -> dict:
    """Tables 2 and 3 (and the claims) from the run folders already in ``out_dir/runs``, e.g.
    those a device call brought back before it was stopped; runs missing there read "not
    run". ``seeds``: default those of ``out_dir/onepass.json``, else ``params["seeds"]``."""
    out_dir = Path(out_dir)
    record_path = out_dir / RECORD
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    if seeds is None:
        seeds = record.get("seeds", params.get("seeds", [0]))
    seeds = [int(s) for s in seeds]
    names = [r["name"] for r in params["runs"]]
    note = _provenance_note(record["chosen"], record.get("budget_s")) if "chosen" in record else ""
    return _write_tables(out_dir, profile, names, seeds, note)


def _seed_list(text: str) -> list[int]:
    return [int(s) for s in text.replace(",", " ").split()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ppdnn.onepass", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True, help="a profile of params.yaml, e.g. fast")
    parser.add_argument("--out", required=True, help="results folder (the layout of results/<profile>/)")
    parser.add_argument("--archive", default=None,
                        help="folder-per-class CIFAR-10 tar(.gz); default: params.yaml's data section")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--seeds", nargs="+", default=None, help="e.g. 0 1 2 or 0,1,2; default: params.yaml's")
    parser.add_argument("--probe-seconds", type=float, default=20.0)
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                        help="seconds for the whole call; epochs are cut to fit (0: no budget)")
    parser.add_argument("--build", default=None, help="checkpoints and data cache (default build/onepass/<profile>)")
    parser.add_argument("--data-cache", default=None, help="CIFAR-10 cache folder (default <build>/data)")
    parser.add_argument("--compile", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--device", default=None, choices=train.DEVICES, help="override the profile's device")
    parser.add_argument("--any-counts", action="store_true",
                        help="accept an archive with other than 50,000/10,000 images (tests)")
    parser.add_argument("--progress", action="store_true", help="tqdm bars per epoch")
    parser.add_argument("--tables-only", action="store_true",
                        help="only (re)write the tables from the run folders in --out")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (or PPDNN_DEBUG=1)")
    args = parser.parse_args(argv)
    seeds = None if args.seeds is None else [s for text in args.seeds for s in _seed_list(text)]

    def body():
        params = pipeline.read_params(args.params)
        if args.tables_only:
            written = tables_only(params, args.profile, args.out, seeds)
            print(written["table2"] + "\n" + written["table3"])
            return
        run_all(params, args.profile, args.out, archive=args.archive, seeds=seeds,
                probe_seconds=args.probe_seconds, budget_s=args.budget_s, build_dir=args.build,
                data_cache=args.data_cache, compile=args.compile, device=args.device,
                expected_counts=None if args.any_counts else data.CIFAR10_COUNTS, progress=args.progress)

    return errors.run_main("ppdnn.onepass", body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
