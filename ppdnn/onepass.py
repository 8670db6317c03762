"""Tables 2 and 3 in one process, without DVC: the pipeline's stage functions in a loop.

Made for a lent GPU machine, which has torch but no dvc, papermill or network:
``python -m ppdnn.onepass --profile fast --out DIR --archive cifar10-jpeg.tar.gz --seeds 0``.

It runs what ``dvc repro`` runs for one profile, through the same plan (:mod:`ppdnn.plan`:
runs, seeds, run folder names, training settings) and the same stage functions: the data
cache, ``stages.encrypt.encrypt`` once per cipher configuration the runs use,
``stages.train.train`` for every run and seed (seed by seed), ``stages.tables.tables`` at
the end. Into ``DIR`` it writes what those stages write into ``results/<profile>/``::

    DIR/runs/<run>-s<seed>/{metrics.json, run.json, epochs.csv}
    DIR/{table2,table3,claims}.{csv,md}  DIR/tables.png  DIR/curves.png  DIR/curves.html

and its own record: ``DIR/onepass.log`` (the log, also printed) and ``DIR/onepass.json``
(the probe, the chosen settings and any epoch cut, the GPU, torch, per-run results and
times). The data cache, the encrypted data sets and the checkpoints go to the build folder
(``--build``, default ``build/onepass/<profile>``), never into ``DIR``; a second call with
the same settings reuses the cache and resumes finished runs from their checkpoints.

What is its own: after the data (decoded first: decoding forks worker processes, which is
safe only before CUDA and the compiler's threads start), a throughput probe of about
``--probe-seconds`` (torch.compile adds its compile time on top) measures training
images/s of the profile's configuration on random images, eager and, on CUDA only, with
torch.compile. From those figures it estimates the time of every run, evaluation and
compilation included, against ``--budget-s`` (the whole call, data and probe included;
default 480 s), takes the setting that trains the most epochs within it (the faster one
between equals) and, if even that one does not fit, cuts *epochs*, never runs. A cut or a
changed setting (epochs, compile, device) replaces fields of each run's TrainConfig, so it
shows in run.json's ``config``; the reason is in onepass.json and the log.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from . import ciphers, data, errors, plan
from . import train as training
from .augment import Augmentation
from .checkpoints import CHECKPOINT, CheckpointError
from .files import atomic_write
from .stages import encrypt as encrypt_stage
from .stages import train as train_stage

DEFAULT_BUDGET_S = 480.0
LOG = "onepass.log"
RECORD = "onepass.json"
LOGGER = logging.getLogger("ppdnn.onepass")
# Planning constants: evaluation (forward only) costs about a third of a training image;
# an evaluation graph compiles in about half the time of a training graph, and so does a
# training graph of another model shape after the first (shared kernels); a run has a
# few seconds of fixed cost (model, copies to the device, hashing); the estimate fills at
# most SAFETY of the time left; TABLES_S is kept for the tables at the end.
EVAL_COST = 1 / 3
EVAL_COMPILE_FACTOR = 0.5
OTHER_SHAPE_COMPILE = 0.5
RUN_OVERHEAD_S = 2.0
EPOCH_OVERHEAD_S = 0.2
SAFETY = 0.9
TABLES_S = 15.0


class RunsFailed(errors.PpdnnError):
    """Some runs failed (each is in the log and onepass.json); the others and the tables were written."""


@dataclass(frozen=True)
class Options:
    """How one call runs (the command line's options)."""
    out_dir: Path
    build_dir: Path | None = None          # default build/onepass/<profile>
    data_cache: Path | None = None         # default <build_dir>/data
    archive: Path | None = None            # default: params.yaml's data section
    seeds: tuple[int, ...] | None = None   # default: params.yaml's
    probe_seconds: float = 20.0
    budget_s: float | None = DEFAULT_BUDGET_S  # None or 0: no budget, no cut
    compile: str = "auto"                  # auto (the probe decides), on, off (CUDA only)
    device: str | None = None              # overrides the profile's
    any_counts: bool = False               # accept an archive of other than CIFAR-10's counts (tests)
    progress: bool = False
    keep_going: bool = True                # a failed run is logged, the others go on

    def __post_init__(self):
        if self.compile not in ("auto", "on", "off"):
            raise ValueError(f"compile must be 'auto', 'on' or 'off', got {self.compile!r}")
        if self.device is not None and self.device not in training.DEVICES:
            raise ValueError(f"device must be one of {training.DEVICES}, got {self.device!r}")
        for name in ("probe_seconds", "budget_s"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class Folders:
    """Where a call reads and writes: results in ``out``; cache, data sets, checkpoints in ``build``."""
    out: Path
    build: Path
    data: Path

    def encrypted(self, cipher: str) -> Path:
        return self.build / "encrypted" / cipher

    def checkpoints(self, run: plan.Run, seed: int) -> Path:
        return self.build / "runs" / run.folder(seed)

    def results(self, run: plan.Run, seed: int) -> Path:
        return self.out / "runs" / run.folder(seed)


@dataclass
class Context:
    """One call's state: its plan, folders, the profile's base configuration and its record."""
    params: dict
    plan: plan.Plan
    options: Options
    folders: Folders
    where: str
    base: training.TrainConfig
    record: dict
    started: float

    @contextlib.contextmanager
    def timed(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.record["timings"][name] = round(time.perf_counter() - start, 2)

    def save(self) -> None:
        """Write onepass.json now (a partial record survives a killed call)."""
        self.record["timings"]["total_s"] = round(time.perf_counter() - self.started, 2)
        text = json.dumps(self.record, indent=2, default=str) + "\n"
        atomic_write(self.folders.out / RECORD, lambda f: f.write(text.encode()))


# ---------------------------------------------------------------- log
@contextlib.contextmanager
def logging_to(path: Path | None):
    """The lines of :data:`LOGGER` to stdout and to ``path`` (replaced; None: stdout only) while inside."""
    handlers = [logging.StreamHandler(sys.stdout)]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(message)s"))
        LOGGER.addHandler(handler)
    level, propagate = LOGGER.level, LOGGER.propagate
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False  # once, not again through whatever the root logger prints
    try:
        yield LOGGER
    finally:
        for handler in handlers:
            LOGGER.removeHandler(handler)
            handler.close()
        LOGGER.setLevel(level)
        LOGGER.propagate = propagate


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


def probe_throughput(base: training.TrainConfig, seconds: float = 20.0, compile_modes=None) -> dict:
    """Training images/s of ``base`` (the profile's configuration) on random images.

    One candidate per ``compile`` setting (``compile_modes``, default ``[False, True]`` on
    CUDA; always ``[False]`` on a CPU), each with ``first_s`` (a fresh model's first short
    pass: cuDNN autotuning, compilation), ``compile_s`` (what that pass cost beyond steady
    speed), ``recompile_s`` (the same for a second fresh model: warm compile caches, as for
    every later run of that shape) and ``images_per_s`` (steady speed). The settings share
    ``seconds``; compilation comes on top.
    """
    device = training.resolve_device(base.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True  # as train.run does
    modes = [False] if not cuda else list(compile_modes) if compile_modes is not None else [False, True]
    result = {"device": training.device_description(device), "recipe": base.recipe, "width": base.width,
              "batch_size": base.batch_size, "amp": base.amp and cuda, "channels_last": base.channels_last,
              "seconds": float(seconds), "candidates": {}}
    share = max(float(seconds), 0.0) / len(modes)
    for mode in modes:
        key = "compile" if mode else "eager"
        entry = _probe_one(dataclasses.replace(base, device=device.type, compile=bool(mode)), share)
        result["candidates"][key] = entry
        if "error" in entry:
            LOGGER.info(f"probe {key}: FAILED ({entry['error']})")
        else:
            LOGGER.info(f"probe {key}: {entry['images_per_s']:.0f} images/s (recipe {base.recipe}, width "
                        f"{base.width}, batch {base.batch_size}, {result['device']}); first pass "
                        f"{entry['first_s']:.1f} s, compile cost {entry['compile_s']:.1f} s, again on a "
                        f"fresh model {entry['recompile_s']:.1f} s")
    if not cuda:
        result["note"] = "CPU: torch.compile not measured (the recipes compile on CUDA only)"
        LOGGER.info(f"probe: {result['note']}")
    return result


def _probe_one(config: training.TrainConfig, share: float) -> dict:
    """One probe candidate: a short warm-up model, then a second fresh model sized to fill
    what is left of ``share`` seconds (at least 3 s, or the share)."""
    start = time.perf_counter()
    bs = config.batch_size
    try:
        warm_n = 4 * bs
        rows = training.measure_speed(config, n_images=warm_n, epochs=2)
        left = share - (time.perf_counter() - start)
        batches = int(max(left, min(share, 3.0)) * rows[1]["images_per_s"] / 2 / bs)
        n = bs * min(max(batches, 4), max(4, 100_000 // bs))
        again = training.measure_speed(config, n_images=n, epochs=2)
        speed = again[1]["images_per_s"]
        return {"images_per_s": speed, "first_s": rows[0]["seconds"],
                "compile_s": max(rows[0]["seconds"] - warm_n / speed, 0.0),
                "recompile_s": max(again[0]["seconds"] - n / speed, 0.0),
                "images_timed": n, "wall_s": time.perf_counter() - start}
    except Exception as exc:  # a compiler failure must not end the call: eager remains
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}", "wall_s": time.perf_counter() - start}


# ---------------------------------------------------------------- time budget
@dataclass(frozen=True)
class Workload:
    """What the time estimate needs to know of the runs to train."""
    jobs: tuple[tuple[str, bool], ...]  # (adaptation network, flip TTA evaluated) per run x seed
    n_train: int
    n_test: int
    n_val: int
    batch_size: int
    drop_last: bool
    eval_every_epoch: bool = True

    @classmethod
    def of(cls, jobs: list[tuple[plan.Run, int]], base: training.TrainConfig, n_train: int, n_test: int) -> "Workload":
        """The workload of ``jobs`` under ``base`` on a cache of ``n_train`` / ``n_test`` images."""
        return cls(tuple((run.adaptation, base.eval_tta and not Augmentation.reads_plain(run.augment))
                         for run, _ in jobs),
                   base.train_subset or n_train - base.val_size, base.test_subset or n_test, base.val_size,
                   base.batch_size, base.drop_last, base.eval_every_epoch)


def estimate_seconds(candidate: dict, work: Workload, epochs: int, compiled: bool) -> float:
    """Estimated seconds of every job of ``work`` at ``epochs`` with one probe candidate."""
    speed = candidate["images_per_s"]
    steps = work.n_train // work.batch_size if work.drop_last else math.ceil(work.n_train / work.batch_size)
    per_epoch = steps * work.batch_size / speed + EPOCH_OVERHEAD_S
    evaluation = EVAL_COST * (work.n_test + work.n_val) / speed
    per_job = epochs * per_epoch + (epochs if work.eval_every_epoch else 1) * evaluation + RUN_OVERHEAD_S
    total = len(work.jobs) * per_job + sum(tta for _, tta in work.jobs) * 2 * EVAL_COST * work.n_test / speed
    if compiled:
        # The probe compiled the plain model's training graph already (the caches are warm);
        # left to pay: its evaluation graph, the training and evaluation graphs of the other
        # model shapes (OTHER_SHAPE_COMPILE of a cold compile: shared kernels), and per run
        # what the probe's second, fresh model cost, for its training and evaluation graph.
        shapes = len({adaptation for adaptation, _ in work.jobs} | {"none"})
        per_model = 1 + EVAL_COMPILE_FACTOR
        total += candidate["compile_s"] * (EVAL_COMPILE_FACTOR + (shapes - 1) * OTHER_SHAPE_COMPILE * per_model)
        total += len(work.jobs) * per_model * candidate["recompile_s"]
    return total


def fit_budget(probe: dict, work: Workload, epochs: int, seconds_left: float | None, cuda: bool) -> dict:
    """Choose compile on/off and the epochs to train so that every job fits ``seconds_left``.

    The setting that fits the most epochs (at most ``epochs``) wins; between equals, the
    faster. ``seconds_left=None``: no budget, the faster setting at full epochs. Epochs
    are cut, never jobs; at least one epoch is always trained.
    """
    usable = None if seconds_left is None else SAFETY * (seconds_left - TABLES_S)
    options = []
    for key, candidate in probe["candidates"].items():
        if "error" in candidate:
            continue
        def at(e, c=candidate, k=key == "compile"):
            return estimate_seconds(c, work, e, k)
        fit = epochs
        while usable is not None and fit > 1 and at(fit) > usable:
            fit -= 1
        options.append({"compile": key == "compile", "epochs": fit, "estimated_s": at(fit),
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


def with_settings(config: training.TrainConfig, profile_train: dict, **changes) -> training.TrainConfig:
    """``config`` with ``changes`` (epochs after a cut, compile, device). Milestones that
    neither the profile nor the recipe sets follow the epochs, as ``TrainConfig`` makes them."""
    explicit = "milestones" in profile_train or "milestones" in training.RECIPES[config.recipe]
    if "epochs" in changes and not explicit:
        changes["milestones"] = None
    return dataclasses.replace(config, **changes)


# ---------------------------------------------------------------- data and encryption
def prepare_data(cache_dir: Path, archive: Path | None, data_settings: dict | None,
                 expected_counts=data.CIFAR10_COUNTS) -> dict:
    """The data stage's cache in ``cache_dir``, reused when it was built from the same
    ``archive`` (or, without one, from ``data_settings``, params.yaml's ``data:``); its manifest."""
    if (Path(cache_dir) / data.MANIFEST).is_file():
        manifest = data.read_manifest(cache_dir)
        if archive is None or manifest.get("source_sha256") == data.sha256_of(archive):
            LOGGER.info(f"data: reusing the cache in {cache_dir}")
            return manifest
    if archive is not None:
        return data.prepare(source="archive", archive=archive, cache_dir=cache_dir, expected_counts=expected_counts)
    settings = data_settings or {}
    return data.prepare(source=settings.get("source", "auto"), archive=settings.get("archive"), root="data/raw",
                        cache_dir=cache_dir, expected_counts=expected_counts)


def encrypt_all(params: dict, names, data_dir: Path, folder_of, where: str = plan.PARAMS) -> dict:
    """The encrypt stage for each configuration of ``names``: ``folder_of(name)`` receives
    its data set and key; returns {name: key}."""
    entries = plan.cipher_entries(params, where, names=list(names))
    key_seed = plan.key_seed(params, where)
    return {name: encrypt_stage.encrypt(data_dir, folder_of(name), ciphers.configuration(name, entries), key_seed)
            for name in entries}


# ---------------------------------------------------------------- the call
def run_all(params: dict, profile: str, options: Options, where: str = plan.PARAMS) -> dict:
    """Data -> encrypt -> every run x seed of the plan -> Tables 2 and 3, in this process.

    ``where`` names the params file in error messages. Returns the record written to
    onepass.json; raises :class:`RunsFailed` at the end if a run failed.
    """
    ctx = _start(params, profile, options, where)
    with logging_to(ctx.folders.out / LOG):
        LOGGER.info(f"ppdnn.onepass: profile {profile}, {len(ctx.plan.runs)} runs x seeds {list(ctx.plan.seeds)}, "
                    f"device {ctx.base.device}, torch {torch.__version__}, budget {options.budget_s or 'none'} s")
        _data_step(ctx)  # first: decoding forks workers, safe only before CUDA and compile threads start
        with ctx.timed("probe_s"):
            if ctx.record["cuda"] and options.compile != "off":
                ctx.record["dynamo"] = configure_dynamo()
            modes = [options.compile == "on"] if options.compile != "auto" else None
            ctx.record["probe"] = probe_throughput(ctx.base, options.probe_seconds, modes)
        with ctx.timed("encrypt_s"):
            names = list(dict.fromkeys(run.cipher for run in ctx.plan.runs))
            keys = encrypt_all(params, names, ctx.folders.data, ctx.folders.encrypted, where)
        LOGGER.info(f"encrypt: {len(keys)} cipher configurations ({', '.join(keys)}) "
                    f"in {ctx.record['timings']['encrypt_s']:.1f} s")
        _budget_step(ctx)
        with ctx.timed("train_s"):
            failures = _train_all(ctx)
        with ctx.timed("tables_s"):
            if len(failures) < len(ctx.record["results"]):
                ctx.record["tables"] = write_tables(ctx.folders.out, ctx.plan)
        _summary(ctx, failures)
    if failures:
        raise RunsFailed(f"{len(failures)} run(s) failed: {', '.join(failures)} (see {ctx.folders.out / LOG})")
    return ctx.record


def _start(params: dict, profile: str, options: Options, where: str) -> Context:
    """The plan, the profile's base configuration (what the probe measures: a plain run,
    augmented in the cloud), the folders and the record's header; a bad setting fails here."""
    the_plan = plan.Plan.from_params(params, profile, where)
    if options.seeds is not None:
        the_plan = dataclasses.replace(the_plan, seeds=plan.seeds({"seeds": list(options.seeds)}, "--seeds"))
    probe_run = plan.Run("probe", the_plan.runs[0].cipher, "none", "cloud")
    base = train_stage.config_for(the_plan.train, probe_run, 0, f"{where}: profiles.{profile}.train")
    if options.device is not None:
        base = dataclasses.replace(base, device=options.device)
    train_stage.require_device(base.device, profile)
    build = Path(options.build_dir) if options.build_dir is not None else Path("build") / "onepass" / profile
    folders = Folders(Path(options.out_dir), build, Path(options.data_cache) if options.data_cache else build / "data")
    folders.out.mkdir(parents=True, exist_ok=True)
    cuda = training.resolve_device(base.device).type == "cuda"  # no CUDA context yet
    record = {"profile": profile, "settings": the_plan.train, "seeds": list(the_plan.seeds),
              "runs": [r.name for r in the_plan.runs], "torch": torch.__version__,
              "cuda": torch.version.cuda if cuda else None, "python": platform.python_version(),
              "budget_s": options.budget_s or None, "out_dir": str(folders.out), "build_dir": str(folders.build),
              "timings": {}, "results": []}
    return Context(params, the_plan, options, folders, where, base, record, time.perf_counter())


def _data_step(ctx: Context) -> None:
    with ctx.timed("data_s"):
        archive = Path(ctx.options.archive) if ctx.options.archive is not None else None
        counts = None if ctx.options.any_counts else data.CIFAR10_COUNTS
        manifest = prepare_data(ctx.folders.data, archive, ctx.params.get("data"), counts)
    counts = {split: manifest["splits"][split]["count"] for split in data.SPLITS}
    device = training.resolve_device(ctx.base.device)
    ctx.record.update(device=training.device_description(device),
                      gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None)
    ctx.record["data"] = {"source": manifest["source"], "source_path": manifest.get("source_path"),
                          "source_sha256": manifest.get("source_sha256"), "cache_dir": str(ctx.folders.data),
                          **{f"{split}_images": n for split, n in counts.items()}}
    LOGGER.info(f"data: {manifest['source']} ({manifest.get('source_path')}), {counts['train']} training and "
                f"{counts['test']} test images in {ctx.record['timings']['data_s']:.1f} s")


def _budget_step(ctx: Context) -> None:
    """Compile or not and the epochs within the budget (onepass.json's ``chosen``)."""
    budget = ctx.options.budget_s or None
    left = None if budget is None else budget - (time.perf_counter() - ctx.started)
    work = Workload.of(ctx.plan.jobs(), ctx.base, ctx.record["data"]["train_images"], ctx.record["data"]["test_images"])
    chosen = fit_budget(ctx.record["probe"], work, ctx.base.epochs, left, bool(ctx.record["cuda"]))
    ctx.record["chosen"] = chosen
    compiled = "n/a (CPU)" if chosen["compile"] is None else ("on" if chosen["compile"] else "off")
    LOGGER.info(f"plan: compile {compiled}, {chosen['epochs']} epochs, {len(work.jobs)} runs x {work.n_train} "
                f"training images, estimated {chosen['estimated_s']:.0f} s"
                + ("" if left is None else f" of {left:.0f} s left"))
    if chosen["epochs_cut"]:
        LOGGER.info(f"plan: EPOCHS CUT from {chosen['profile_epochs']} to {chosen['epochs']}: {chosen['cut_reason']}")
    if "warning" in chosen:
        LOGGER.info(f"plan: WARNING {chosen['warning']}")


def _train_all(ctx: Context) -> list[str]:
    """Every (run, seed) of the plan; returns the folders of the runs that failed."""
    jobs, failures = ctx.plan.jobs(), []
    for i, (run, seed) in enumerate(jobs, 1):
        start, entry = time.perf_counter(), {"name": run.folder(seed), "run": run.name, "seed": seed}
        try:
            results = _train_job(ctx, run, seed, entry)
        except Exception as exc:
            if not ctx.options.keep_going:
                raise
            entry.update(error=f"{type(exc).__name__}: {exc}", wall_s=round(time.perf_counter() - start, 2))
            failures.append(entry["name"])
            LOGGER.info(f"[{i}/{len(jobs)}] {entry['name']}: FAILED after {entry['wall_s']:.1f} s: "
                        f"{entry['error']}\n{traceback.format_exc()}")
        else:
            entry.update(test_acc=results["test_acc"], test_acc_tta=results.get("test_acc_tta"),
                         wall_s=round(time.perf_counter() - start, 2), train_wall_s=round(results["wall_time_s"], 2),
                         images_per_s=round(results["images_per_s"], 1), epochs=results["epochs"],
                         train_images=results["train_images"],
                         compile=bool(results["config"]["compile"] and ctx.record["cuda"]))
            tta = "" if entry["test_acc_tta"] is None else f" (flip TTA {entry['test_acc_tta']:.4f})"
            LOGGER.info(f"[{i}/{len(jobs)}] {run.name} seed {seed}: test_acc {entry['test_acc']:.4f}{tta}, "
                        f"{entry['wall_s']:.1f} s ({entry['train_wall_s']:.1f} s training), "
                        f"{entry['images_per_s']:.0f} images/s")
        ctx.record["results"].append(entry)
        ctx.save()
    return failures


def _train_job(ctx: Context, run: plan.Run, seed: int, entry: dict) -> dict:
    """The train stage for one run and seed with this call's settings; a run that fails with
    torch.compile is trained again without it, and so is every later run."""
    chosen = ctx.record["chosen"]
    changes = {"epochs": chosen["epochs"], "device": ctx.base.device}
    if chosen["compile"] is not None:
        changes["compile"] = chosen["compile"] and "compile_off_from" not in chosen
    config = train_stage.config_for(ctx.plan.train, run, seed, f"{ctx.where}: profiles.{ctx.plan.profile}.train")
    config = with_settings(config, ctx.plan.train, **changes)
    try:
        return _train_stage(ctx, config, run, seed)
    except Exception:
        if not (ctx.record["cuda"] and config.compile):
            raise
        LOGGER.info(f"{run.folder(seed)}: failed with torch.compile; this and every later run without it:\n"
                    f"{traceback.format_exc()}")
        entry["compile_failed"] = True
        chosen["compile_off_from"] = run.folder(seed)
        return _train_stage(ctx, dataclasses.replace(config, compile=False), run, seed)


def _train_stage(ctx: Context, config: training.TrainConfig, run: plan.Run, seed: int) -> dict:
    """``stages.train.train`` as the DVC stage calls it; a checkpoint of other settings in
    this call's own build folder (an earlier call's cut) is removed and the run starts afresh."""
    entries = plan.cipher_entries(ctx.params, ctx.where, names=[run.cipher])
    call = dict(config=config, configuration=ciphers.configuration(run.cipher, entries),
                data_dir=ctx.folders.data, out_dir=ctx.folders.checkpoints(run, seed),
                encrypted_dir=ctx.folders.encrypted(run.cipher), metrics_dir=ctx.folders.results(run, seed),
                extra={"profile": ctx.plan.profile, "run": run.name}, progress=ctx.options.progress)
    try:
        return train_stage.train(**call)
    except CheckpointError as exc:
        LOGGER.info(f"{run.folder(seed)}: its checkpoint is removed and the run starts afresh ({errors.one_line(exc)})")
        (ctx.folders.checkpoints(run, seed) / CHECKPOINT).unlink(missing_ok=True)
        return train_stage.train(**call)


def _summary(ctx: Context, failures: list[str]) -> None:
    done = [r for r in ctx.record["results"] if "error" not in r]
    total = round(time.perf_counter() - ctx.started, 2)
    images = sum(r["train_images"] * r["epochs"] for r in done)
    epoch_s = sum(r["train_wall_s"] for r in done)
    budget = ctx.record["budget_s"]
    ctx.record.update(images_trained=images, failures=failures,
                      images_per_s={"training": round(images / epoch_s, 1) if epoch_s else None,
                                    "end_to_end": round(images / total, 1) if total else None},
                      within_budget=None if budget is None else total <= budget)
    ctx.save()
    LOGGER.info(f"summary: {len(done)}/{len(ctx.record['results'])} runs, total wall time {total:.1f} s"
                + ("" if budget is None else f" (budget {budget:.0f} s, {'within' if total <= budget else 'OVER'})")
                + f"; {images} training images, {ctx.record['images_per_s']['training'] or 0:.0f} images/s training, "
                f"{ctx.record['images_per_s']['end_to_end'] or 0:.0f} images/s end to end; "
                f"timings {ctx.record['timings']}")


# ---------------------------------------------------------------- tables
def write_tables(out_dir: Path, the_plan: plan.Plan) -> list[str]:
    """The tables stage on ``out_dir/runs`` for the plan's runs and seeds; the names written.
    Tables 2 and 3 also go to the log."""
    from .stages import tables as tables_stage  # imported here: matplotlib only when tables are made

    written = tables_stage.tables(Path(out_dir) / "runs", out_dir, [r.name for r in the_plan.runs],
                                  list(the_plan.seeds), the_plan.profile)
    for name in ("table2.md", "table3.md"):
        LOGGER.info(written[name].read_text().rstrip())
    return sorted(written)


def tables_only(params: dict, profile: str, out_dir, seeds=None, where: str = plan.PARAMS) -> list[str]:
    """The tables from the run folders already in ``out_dir/runs`` (e.g. those a device call
    brought back before it was stopped); runs missing there read "not run". ``seeds``:
    default those of ``out_dir/onepass.json``, else the plan's."""
    out_dir = Path(out_dir)
    the_plan = plan.Plan.from_params(params, profile, where)
    record_path = out_dir / RECORD
    if seeds is None and record_path.is_file():
        seeds = json.loads(record_path.read_text()).get("seeds")
    if seeds is not None:
        the_plan = dataclasses.replace(the_plan, seeds=plan.seeds({"seeds": list(seeds)}, "--seeds"))
    return write_tables(out_dir, the_plan)


# ---------------------------------------------------------------- command line
def _seed_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are non-negative ints like 0 1 2 or 0,1,2, got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ppdnn.onepass", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True, help="a profile of params.yaml, e.g. fast")
    parser.add_argument("--out", required=True, help="results folder (the layout of results/<profile>/)")
    parser.add_argument("--archive", default=None,
                        help="folder-per-class CIFAR-10 tar(.gz); default: params.yaml's data section")
    parser.add_argument("--params", default=plan.PARAMS)
    parser.add_argument("--seeds", nargs="+", type=_seed_list, default=None,
                        help="e.g. 0 1 2 or 0,1,2; default: params.yaml's")
    parser.add_argument("--probe-seconds", type=float, default=20.0)
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                        help="seconds for the whole call; epochs are cut to fit (0: no budget)")
    parser.add_argument("--build", default=None,
                        help="data cache, encrypted data sets, checkpoints (default build/onepass/<profile>)")
    parser.add_argument("--data-cache", default=None, help="CIFAR-10 cache folder (default <build>/data)")
    parser.add_argument("--compile", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--device", default=None, choices=training.DEVICES, help="override the profile's device")
    parser.add_argument("--any-counts", action="store_true",
                        help="accept an archive with other than 50,000/10,000 images (tests)")
    parser.add_argument("--progress", action="store_true", help="tqdm bars per epoch")
    parser.add_argument("--tables-only", action="store_true",
                        help="only (re)write the tables from the run folders in --out")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (or PPDNN_DEBUG=1)")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    seeds = None if args.seeds is None else tuple(s for group in args.seeds for s in group)

    def body():
        params = plan.read(args.params)
        if args.tables_only:
            with logging_to(None):
                tables_only(params, args.profile, args.out, seeds, args.params)
            return
        options = Options(out_dir=Path(args.out), build_dir=args.build, data_cache=args.data_cache,
                          archive=args.archive, seeds=seeds, probe_seconds=args.probe_seconds,
                          budget_s=args.budget_s, compile=args.compile, device=args.device,
                          any_counts=args.any_counts, progress=args.progress)
        run_all(params, args.profile, options, args.params)

    return errors.run_main("ppdnn.onepass", body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
