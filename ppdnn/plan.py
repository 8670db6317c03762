"""``params.yaml``, read once per stage, each stage checking only its own slice, and the
plan of runs built from it.

The plan is the one place that knows the list of runs and seeds of a profile, names a
run's folder (:meth:`Run.folder`) and resolves a run's training settings
(:meth:`Plan.train_settings`). Both runners use it: the DVC stages (through their
``main``) and ``onepass``. This module imports nothing heavy (no torch), so the stages
that only aggregate depend on it without depending on the training code.
"""
from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import PpdnnError

PARAMS = "params.yaml"
TOP_LEVEL = ("profile", "seeds", "key_seed", "data", "profiles", "ciphers", "runs")
PROFILE_KEYS = ("security_images", "train")   # train: a recipe plus TrainConfig settings
RUN_KEYS = ("name", "cipher", "adaptation", "augment")
MAX_SECURITY_IMAGES = 10000                    # the CIFAR-10 test set


class ParamsError(PpdnnError):
    """params.yaml is missing, malformed, or names something that does not exist."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a mapping with a repeated key (YAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# ---------------------------------------------------------------- reading
def read(path: str | os.PathLike = PARAMS) -> dict:
    """The parsed params file (a mapping); one-line ParamsError for anything else."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run from the repository root or pass --params") from None
    if not stat.S_ISREG(mode):  # a FIFO would block for ever
        raise ParamsError(f"{path} is not a regular file")
    try:
        params = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ParamsError(f"{path} is not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path} must be a mapping of {TOP_LEVEL}")
    unknown = sorted(map(str, set(params) - set(TOP_LEVEL)))
    if unknown:
        raise ParamsError(f"{path}: unknown keys {unknown}; known: {TOP_LEVEL}")
    return params


def _need(ok, where, message):
    if not ok:
        raise ParamsError(f"{where}: {message}")


def _get(params: dict, key: str, where):
    _need(key in params, where, f"missing key {key!r}")
    return params[key]


def _is_count(value, low=0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


# ---------------------------------------------------------------- slices
def seeds(params: dict, where=PARAMS) -> tuple[int, ...]:
    value = _get(params, "seeds", where)
    _need(isinstance(value, list) and value and all(_is_count(s) for s in value) and len(set(value)) == len(value),
          where, f"seeds must be a non-empty list of distinct non-negative ints, got {value!r}")
    return tuple(value)


def key_seed(params: dict, where=PARAMS) -> int:
    value = _get(params, "key_seed", where)
    _need(_is_count(value), where, f"key_seed must be a non-negative int, got {value!r}")
    return value


def profile_name(params: dict, where=PARAMS, override: str | None = None) -> str:
    name = override if override is not None else _get(params, "profile", where)
    profiles = _get(params, "profiles", where)
    _need(isinstance(profiles, dict) and profiles, where, "profiles must be a non-empty mapping")
    _need(isinstance(name, str) and name in profiles, where,
          f"profile {name!r} is not defined; profiles: {sorted(map(str, profiles))}")
    return name


def profile_settings(params: dict, name: str, where=PARAMS) -> dict:
    """The profile's settings: ``security_images`` (1..10000) and ``train`` (a mapping)."""
    settings = _get(params, "profiles", where).get(name)
    _need(isinstance(settings, dict) and set(settings) == set(PROFILE_KEYS), where,
          f"profile {name!r} needs exactly the keys {PROFILE_KEYS}, got "
          f"{sorted(map(str, settings)) if isinstance(settings, dict) else settings!r}")
    n = settings["security_images"]
    _need(_is_count(n, 1) and n <= MAX_SECURITY_IMAGES, where,
          f"profile {name!r}: security_images must be an int in 1..{MAX_SECURITY_IMAGES}, got {n!r}")
    _need(isinstance(settings["train"], dict), where,
          f"profile {name!r}: train must be a mapping of a recipe and TrainConfig settings, got {settings['train']!r}")
    return settings


def cipher_entries(params: dict, where=PARAMS, names=None) -> dict:
    """``ciphers:``: configuration name -> entry (``{scheme: ..., **options}``); with
    ``names``, only those entries (a stage that uses one configuration reads one)."""
    entries = _get(params, "ciphers", where)
    _need(isinstance(entries, dict) and entries, where,
          "ciphers must be a mapping: configuration name -> {scheme: ..., options}")
    if names is not None:
        missing = [n for n in names if n not in entries]
        _need(not missing, where, f"unknown cipher configurations {missing}; ciphers lists {list(entries)}")
        entries = {n: entries[n] for n in names}
    for name, entry in entries.items():
        _need(isinstance(name, str) and name.isidentifier(), where, f"cipher configuration name {name!r} is not an identifier")
        _need(isinstance(entry, dict) and isinstance(entry.get("scheme", name), str), where,
              f"ciphers.{name} must be a mapping like {{scheme: pixel, shuffle: true}}, got {entry!r}")
    return dict(entries)


@dataclass(frozen=True)
class Run:
    """One row of Tables 2-3: a cipher configuration, an adaptation network, where to augment."""
    name: str
    cipher: str
    adaptation: str
    augment: str

    def folder(self, seed: int) -> str:
        """The one place a run folder's name is made (``dvc.yaml`` spells it the same)."""
        return f"{self.name}-s{seed}"


def runs(params: dict, where=PARAMS) -> tuple[Run, ...]:
    value = _get(params, "runs", where)
    _need(isinstance(value, list) and value, where, "runs must be a non-empty list")
    ciphers = cipher_entries(params, where)
    out = []
    for run in value:
        _need(isinstance(run, dict) and set(run) == set(RUN_KEYS), where, f"each run needs exactly {RUN_KEYS}, got {run!r}")
        _need(all(isinstance(run[k], str) for k in RUN_KEYS), where, f"the fields of a run are names (strings), got {run!r}")
        _need(run["name"].isidentifier(), where, f"run name {run['name']!r} is not an identifier")
        _need(run["cipher"] in ciphers, where, f"run {run['name']!r}: cipher {run['cipher']!r} is not under ciphers")
        out.append(Run(**run))
    names = [r.name for r in out]
    _need(len(set(names)) == len(names), where, f"run names must be distinct: {names}")
    return tuple(out)


def finite_numbers(value, where: str) -> None:
    """Refuse NaN and infinity anywhere in a settings mapping (YAML's ``.inf`` and ``.nan``)."""
    if isinstance(value, dict):
        for k, v in value.items():
            finite_numbers(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            finite_numbers(v, f"{where}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ParamsError(f"{where} must be a finite number, got {value}")


# ---------------------------------------------------------------- the plan
@dataclass(frozen=True)
class Plan:
    """What a profile trains: its runs, seeds and training settings."""
    profile: str
    seeds: tuple[int, ...]
    runs: tuple[Run, ...]
    train: dict
    security_images: int

    @classmethod
    def from_params(cls, params: dict, profile: str | None = None, where=PARAMS) -> "Plan":
        name = profile_name(params, where, profile)
        return cls(name, seeds(params, where), runs(params, where), profile_train(params, name, where),
                   profile_settings(params, name, where)["security_images"])

    def run(self, name: str) -> Run:
        for run in self.runs:
            if run.name == name:
                return run
        raise ParamsError(f"unknown run {name!r}; runs: {[r.name for r in self.runs]}")

    def jobs(self) -> list[tuple[Run, int]]:
        """Every (run, seed), seed by seed: an interrupted pass has whole seeds done first."""
        return [(run, seed) for seed in self.seeds for run in self.runs]

    def train_settings(self, run: Run, seed: int) -> dict:
        """The keyword arguments of ``TrainConfig.from_recipe`` for ``run`` and ``seed``."""
        return train_settings(self.train, run, seed)


def train_settings(train: dict, run: Run, seed: int) -> dict:
    """A profile's ``train`` settings completed for one run and seed (the one place)."""
    return {"recipe": "paper", **train, "adaptation": run.adaptation, "augment": run.augment, "seed": int(seed)}


def profile_train(params: dict, name: str, where=PARAMS) -> dict:
    """``profiles.<name>.train``, checked (the train stage's slice)."""
    settings = profile_settings(params, name, where)
    finite_numbers(settings["train"], f"{where}: profiles.{name}.train")
    return dict(settings["train"])


def load(path: str | os.PathLike = PARAMS, profile: str | None = None) -> Plan:
    """The plan of ``profile`` (default: the file's ``profile``)."""
    return Plan.from_params(read(path), profile, where=str(path))
