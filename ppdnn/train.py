"""Training and evaluation of one configuration: recipes, the loop, metrics.

Data stay on the training device as uint8 (N, 3, H, W). Each batch is augmented where the
configuration says (``augment.Augmentation``: in the client = shift/flip the plain image,
then encrypt it; in the cloud = shift/flip the encrypted image), and normalised on the fly
with the per-channel mean/std of the training images *as the network sees them* (the
encrypted images for encrypted runs, before augmentation).

Recipes (``RECIPES``; a recipe is how to optimise, a profile in params.yaml says how much)
- ``paper``: Sec. 4.1 exactly, and ``TrainConfig``'s defaults: SGD, momentum 0.9, lr 0.1
  divided by 10 at epochs 150 and 225 of 300, weight decay 5e-4, batch 128, fp32. With
  fewer epochs the two drops stay at 50% and 75% of the run, at fractional epochs.
- ``cpu``: the CPU profile's recipe, for a few epochs on a 2-core machine (README,
  deviation log): Nesterov SGD, a triangular per-step lr (20% warm-up from 0.2x the peak,
  then linear to 0), label smoothing 0.2 on the training loss, batch 64, fp32; the test set
  is evaluated once, after the last epoch (every evaluation costs training time).
  Batch 64 and peak lr 0.05: the best of batch 128 (lr 0.1), 64 (lr 0.05, 0.1) and 32
  (lr 0.025), two epochs on 20,000 plain images (README, deviation 11).
- ``fast``: for a GPU, after the public fast CIFAR-10 ResNet-18 baseline
  (KellerJordan/cifar10-zoo): the ``cpu`` recipe's schedule and smoothing with batch 512
  (last incomplete batch dropped: fixed shapes for compile), peak lr 0.2, bf16 autocast
  and ``torch.compile`` (CUDA only), flip test-time augmentation reported separately as
  ``test_acc_tta`` (never the headline ``test_acc``; not for augmentation in the client,
  where a flipped ciphertext is not what the network was trained on).
Every recipe uses the channels_last memory layout where it is safe (it changes no
arithmetic, ~1.4x faster on a CPU): see ``channels_last_hazards``.

A checkpoint after every epoch makes a killed run resumable (``ppdnn.checkpoints``); on a
CPU the resumed run's metrics are bit-identical to an uninterrupted run's.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import faulthandler
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import augment, checkpoints, models
from .checkpoints import CHECKPOINT, CheckpointError  # noqa: F401  (part of this module's API)
from .data import channel_stats
from .files import atomic_write, check_writable, remove_interrupted_writes

SCHEDULES = ("multistep", "triangular")
DEVICES = ("cpu", "cuda", "auto")
METRICS = "metrics.json"
EPOCHS_CSV = "epochs.csv"
# train_loss_smoothed: the training loss as optimised (with the recipe's label smoothing),
# so it is not comparable with the plain cross-entropy of val_loss and test_loss
EPOCH_COLUMNS = ("epoch", "train_loss_smoothed", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
                 "lr", "seconds", "images_per_s")
PAPER_MILESTONE_FRACTIONS = (0.5, 0.75)  # 150 and 225 of 300 epochs
# A stage that makes no progress for this long dumps every thread's stack to stderr
# (faulthandler), so a hang inside a native library is visible instead of silent.
STALL_SECONDS = float(os.environ.get("PPDNN_STALL_SECONDS", 600))


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run. The defaults are the paper's recipe (Sec. 4.1)."""
    recipe: str = "paper"
    epochs: int = 300
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "multistep"             # "multistep" (per epoch) | "triangular" (per step)
    milestones: tuple[float, ...] | None = None  # in epochs; None: 50% and 75% of the run
    lr_gamma: float = 0.1
    warmup_fraction: float = 0.2            # triangular: steps to the peak, as a fraction
    start_factor: float = 0.2               # triangular: lr at step 0, relative to the peak
    label_smoothing: float = 0.0
    drop_last: bool = False
    width: int = 64
    adaptation: str = "none"
    bn_relu: bool = models.DEFAULT_BN_RELU
    augment: str = "cloud"
    train_subset: int | None = None         # class-balanced subset, see select_subset
    test_subset: int | None = None
    # Held out of the training set (class-balanced, the last images of each class) for
    # every choice of recipe or architecture; the test set only reports. 0: none (paper).
    val_size: int = 0
    seed: int = 0
    device: str = "auto"
    amp: bool = False                       # bf16 autocast where native (see native_bf16), else fp32
    threads: int | None = None              # CPU threads (None: torch's default); results depend on it
    channels_last: bool = True              # memory layout only, where safe (channels_last_hazards)
    compile: bool = False                   # torch.compile, CUDA only
    eval_every_epoch: bool = True           # False: validation and test sets only after the last epoch
    eval_tta: bool = False                  # also report flip-TTA test accuracy
    eval_batch_size: int = 250              # small batches evaluate fastest on a CPU (cache)
    num_classes: int = 10

    def __post_init__(self):
        def check(ok, message):
            if not ok:
                raise ValueError(f"TrainConfig: {message}")

        def number(name, low, high, low_open=False, high_open=False):
            value = getattr(self, name)
            check(isinstance(value, (int, float)) and not isinstance(value, bool),
                  f"{name} must be a number, got {value!r}")
            inside = (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
            check(math.isfinite(value) and inside,
                  f"{name} must be a finite number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}, got {value!r}")

        for name, choices in (("recipe", tuple(RECIPES)), ("schedule", SCHEDULES), ("augment", augment.SITES),
                              ("adaptation", models.ADAPTATIONS), ("device", DEVICES)):
            check(getattr(self, name) in choices, f"unknown {name} {getattr(self, name)!r}; choose one of {choices}")
        for name in ("epochs", "batch_size", "width", "eval_batch_size", "num_classes"):
            check(_is_int(getattr(self, name), 1), f"{name} must be a positive int, got {getattr(self, name)!r}")
        check(_is_int(self.seed, 0), f"seed must be a non-negative int, got {self.seed!r}")
        check(_is_int(self.val_size, 0), f"val_size must be a non-negative int, got {self.val_size!r}")
        for name in ("train_subset", "test_subset", "threads"):
            value = getattr(self, name)
            check(value is None or _is_int(value, 1), f"{name} must be None or a positive int, got {value!r}")
        for name in ("nesterov", "drop_last", "bn_relu", "amp", "channels_last", "compile",
                     "eval_every_epoch", "eval_tta"):
            check(isinstance(getattr(self, name), bool), f"{name} must be true or false, got {getattr(self, name)!r}")
        number("lr", 0, 10, low_open=True)
        number("momentum", 0, 1, high_open=True)
        number("weight_decay", 0, 1)
        number("lr_gamma", 0, 1, low_open=True)
        number("label_smoothing", 0, 1, high_open=True)
        number("warmup_fraction", 0, 1, high_open=True)
        number("start_factor", 0, 1, low_open=True)
        if self.milestones is None:
            # fractional epochs: with 3 epochs the drops come after 1.5 and 2.25 epochs,
            # not both at epoch 2; with 300 they are exactly the paper's 150 and 225
            scaled = tuple(f * self.epochs for f in PAPER_MILESTONE_FRACTIONS)
            object.__setattr__(self, "milestones", scaled)
        else:
            check(isinstance(self.milestones, (list, tuple)) and all(
                isinstance(m, (int, float)) and not isinstance(m, bool) and math.isfinite(m) and m >= 0
                for m in self.milestones), f"milestones must be finite epochs >= 0, got {self.milestones!r}")
            object.__setattr__(self, "milestones", tuple(float(m) for m in self.milestones))

    @classmethod
    def from_recipe(cls, recipe: str = "paper", **overrides) -> "TrainConfig":
        """The recipe's settings with ``overrides``; unknown keys raise ValueError."""
        if not isinstance(recipe, str) or recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}; choose one of {tuple(RECIPES)}")
        unknown = sorted(set(overrides) - set(cls.keys()))
        if unknown:
            raise ValueError(f"unknown TrainConfig key(s) {', '.join(map(repr, unknown))}; "
                             f"valid keys: {', '.join(sorted(cls.keys()))}")
        return cls(recipe=recipe, **{**RECIPES[recipe], **overrides})

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The settings a recipe or a profile may set (every field but ``recipe``)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "recipe")

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


# Departures from TrainConfig's defaults (= the paper's recipe), one place for each recipe.
_ONE_CYCLE = dict(nesterov=True, schedule="triangular", warmup_fraction=0.2, start_factor=0.2,
                  label_smoothing=0.2)
RECIPES: dict[str, dict] = {
    "paper": {},
    "cpu": dict(_ONE_CYCLE, batch_size=64, lr=0.05, eval_every_epoch=False),
    "fast": dict(_ONE_CYCLE, batch_size=512, lr=0.2, drop_last=True, amp=True, compile=True,
                 eval_tta=True, eval_batch_size=1000),
}


# ----------------------------------------------------------------------- helpers
def _is_int(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The lr at a global step (0-based): step decay at (fractional) epochs, or a per-step triangle."""
    if config.schedule == "multistep":
        epoch = step / steps_per_epoch
        return config.lr * config.lr_gamma ** sum(epoch >= m for m in config.milestones)
    total = config.epochs * steps_per_epoch
    peak = int(config.warmup_fraction * total)
    if step < peak:
        return config.lr * (config.start_factor + (1 - config.start_factor) * step / peak)
    return config.lr * (total - step) / (total - peak)


def select_subset(labels: np.ndarray, n: int, num_classes: int | None = None) -> np.ndarray:
    """Indices of a class-balanced subset of ``n`` items: the first n/k of each class, in data order.

    No randomness, so every seed and every scheme trains on the same images.
    """
    labels = np.asarray(labels)
    k = int(num_classes or labels.max() + 1)
    if not 1 <= n <= len(labels):
        raise ValueError(f"subset size must be in 1..{len(labels)}, got {n}")
    quota = n // k + (np.arange(k) < n % k)
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(k))
    rank = np.empty(len(labels), dtype=np.int64)
    rank[order] = np.arange(len(labels)) - starts[labels[order]]
    chosen = np.flatnonzero(rank < quota[labels])
    if len(chosen) != n:
        raise ValueError(f"cannot draw a class-balanced subset of {n}: some class has fewer than "
                         f"{quota.max()} images")
    return chosen


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but CUDA is not available; use device='cpu' or 'auto'")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: CUDA GPUs that support it, CPUs with
    AVX512_BF16 or AMX (elsewhere bf16 autocast is emulated and slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    # oneDNN picks its kernels by instruction set: results are bit-identical only on the
    # same capability and thread count (README, "What is reproducible")
    return f"cpu ({torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads)"


def channels_last_hazards(model: torch.nn.Module) -> list[str]:
    """Convolutions that oneDNN cannot run in the channels_last layout on some CPUs.

    Measured on AMD EPYC with torch 2.14.1 and oneDNN 3.12 limited to AVX2
    (``ONEDNN_MAX_CPU_ISA=AVX2`` reproduces it on AVX-512 machines): the backward pass of
    a 1x1 convolution with stride > 1 and 2 to 7 input channels hangs (2 threads) or
    corrupts the heap (1 thread). In ResNet-18 that is the shortcut of the second stage
    when the width is below 8. Stride 1, larger kernels, 1 or >= 8 input channels and the
    NCHW layout all run fine.
    """
    return [name for name, m in model.named_modules()
            if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)
            and m.stride != (1, 1) and 2 <= m.in_channels < 8]


def use_channels_last(config: TrainConfig, model: torch.nn.Module, device: torch.device) -> bool:
    """channels_last as configured, except on a CPU for a model with a hazardous convolution."""
    return config.channels_last and not (device.type == "cpu" and channels_last_hazards(model))


def _check_split(images, labels, name: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8:
        raise TypeError(f"{name} images must be uint8, got {images.dtype}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{name} images must have shape (N, H, W, 3), got {images.shape}")
    if labels.shape != (len(images),):
        raise ValueError(f"{name} labels must have shape ({len(images)},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{name} labels must be integers, got {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{name} labels must lie in 0..{num_classes - 1}")
    return images, labels.astype(np.int64)


def to_device(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, C) numpy -> uint8 (N, C, H, W) contiguous tensor on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).contiguous()


@contextlib.contextmanager
def deterministic(enabled: bool):
    """torch.use_deterministic_algorithms for the duration (CPU runs), restored afterwards."""
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


_watchdog = {"seconds": 0.0}  # the armed stall timeout, 0 when no watchdog runs


@contextlib.contextmanager
def stall_watchdog(seconds: float = STALL_SECONDS):
    """Dump every thread's stack to stderr whenever ``seconds`` pass without :func:`progress`."""
    try:
        usable = seconds > 0 and sys.stderr is not None and sys.stderr.fileno() >= 0
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):  # e.g. a captured stream
        usable = False
    if not usable:
        yield
        return
    _watchdog["seconds"] = seconds
    faulthandler.dump_traceback_later(seconds, repeat=True)
    try:
        yield
    finally:
        _watchdog["seconds"] = 0.0
        faulthandler.cancel_dump_traceback_later()


def progress() -> None:
    """Re-arm the stall watchdog, if one runs (called once per training or evaluation step)."""
    if _watchdog["seconds"]:
        faulthandler.dump_traceback_later(_watchdog["seconds"], repeat=True)


def write_epochs_csv(path: Path, history: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=EPOCH_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write(path, lambda f: f.write(text.getvalue().encode()))


def write_json(path: Path, obj: dict) -> None:
    """Strict JSON: a NaN or infinity raises ValueError instead of writing invalid JSON."""
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


# ------------------------------------------------------------------ one run's state
@dataclass
class Session:
    """What one run holds on its device: model, optimiser, data, and how batches are made."""
    config: TrainConfig
    device: torch.device
    model: torch.nn.Module
    net: torch.nn.Module                    # the model, compiled where configured
    optimizer: torch.optim.Optimizer
    generator: torch.Generator              # shuffling + augmentation, on the CPU
    augmentation: augment.Augmentation
    x_train: torch.Tensor
    y_train: torch.Tensor
    mean: torch.Tensor                      # (1, C, 1, 1), 0..255 scale
    std: torch.Tensor
    channels_last: bool
    amp: bool

    @property
    def steps_per_epoch(self) -> int:
        n, bs = len(self.x_train), self.config.batch_size
        steps = n // bs if self.config.drop_last else math.ceil(n / bs)
        if not self.config.drop_last and n % bs == 1:
            steps -= 1  # a one-image batch breaks BatchNorm in training mode
        if steps < 1:
            raise ValueError(f"{n} training images give no full batch of {bs}")
        return steps

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images -> normalised float input in the session's memory layout."""
        x = (x.float() - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def start_session(config: TrainConfig, x_train: torch.Tensor, y_train: torch.Tensor,
                  augmentation: augment.Augmentation, normalisation: tuple[list, list]) -> Session:
    """Model and optimiser for ``config`` on the device ``x_train`` lives on.

    ``normalisation``: per-channel (mean, std) on the [0, 1] scale of the training images
    as the network sees them (``ppdnn.data.channel_stats``).
    """
    device = x_train.device
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(config.seed)
    model = models.build(config.adaptation, config.width, config.bn_relu, config.num_classes).to(device)
    channels_last = use_channels_last(config, model, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    mean01, std01 = normalisation
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                nesterov=config.nesterov, weight_decay=config.weight_decay)
    return Session(config=config, device=device, model=model,
                   net=torch.compile(model) if (config.compile and cuda) else model,
                   optimizer=optimizer, generator=torch.Generator().manual_seed(config.seed),
                   augmentation=augmentation, x_train=x_train, y_train=y_train,
                   mean=torch.tensor(mean01, device=device).reshape(1, -1, 1, 1) * 255,
                   std=torch.tensor(std01, device=device).reshape(1, -1, 1, 1) * 255,
                   channels_last=channels_last, amp=config.amp and native_bf16(device))


def train_epoch(s: Session, epoch: int, show_progress: bool = False) -> dict:
    """One pass over a fresh permutation of the training set; the epoch's training figures."""
    config, n, bs, steps = s.config, len(s.x_train), s.config.batch_size, s.steps_per_epoch
    start = time.perf_counter()
    s.net.train()
    order = torch.randperm(n, generator=s.generator).to(s.device)
    offsets = s.augmentation.draw(n, s.generator, device=s.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=s.device)
    correct = torch.zeros((), dtype=torch.int64, device=s.device)
    seen, lr = 0, config.lr
    bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not show_progress,
               leave=False, unit="batch")
    for step in range(steps):
        batch = slice(step * bs, (step + 1) * bs)
        idx = order[batch]
        x = s.augmentation(s.x_train[idx], None if offsets is None else offsets[batch])
        y = s.y_train[idx]
        lr = learning_rate(config, epoch * steps + step, steps)
        for group in s.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(s.device.type, dtype=torch.bfloat16, enabled=s.amp):
            logits = s.net(s.inputs(x))
        loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        s.optimizer.step()
        loss_sum += loss.detach().double() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        progress()
        bar.update()
        if show_progress and (step % 10 == 9 or step == steps - 1):
            bar.set_postfix(loss=f"{float(loss_sum) / seen:.3f}", acc=f"{int(correct) / seen:.3f}",
                            img_s=f"{seen / (time.perf_counter() - start):.0f}")
    if s.device.type == "cuda":
        torch.cuda.synchronize(s.device)
    seconds = time.perf_counter() - start
    bar.close()
    return {"epoch": epoch + 1, "train_loss_smoothed": float(loss_sum) / seen, "train_acc": int(correct) / seen,
            "lr": lr, "seconds": seconds, "images_per_s": seen / seconds}


@torch.no_grad()
def predict(s: Session, x: torch.Tensor, *, flip_tta: bool = False) -> torch.Tensor:
    """Float32 logits for uint8 (N, C, H, W) images; ``flip_tta`` averages with the mirrored image."""
    s.net.eval()
    outs = []
    for part in x.split(s.config.eval_batch_size):
        with torch.autocast(s.device.type, dtype=torch.bfloat16, enabled=s.amp):
            inp = s.inputs(part)
            logits = s.net(inp).float()
            if flip_tta:
                logits = 0.5 * (logits + s.net(inp.flip(-1)).float())
        outs.append(logits)
        progress()
    return torch.cat(outs)


def scores(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict:
    """Cross-entropy, accuracy and per-class accuracy (recall) of logits."""
    pred = logits.argmax(1)
    confusion = torch.bincount(labels * num_classes + pred, minlength=num_classes ** 2)
    confusion = confusion.reshape(num_classes, num_classes).double()
    per_class = confusion.diagonal() / confusion.sum(1).clamp_min(1)
    return {"loss": float(F.cross_entropy(logits, labels)),
            "acc": float((pred == labels).double().mean()),
            "per_class": [float(v) for v in per_class]}


# ------------------------------------------------------------------------- run
# The one schema of what a run records: the few scalars a reader compares go to
# metrics.json (DVC metrics); configuration and provenance go to run.json beside it.
METRIC_KEYS = ("test_acc", "test_loss", "val_acc", "val_loss", "train_acc", "train_loss_smoothed",
               "images_per_s", "wall_time_s")
RUN_INFO = "run.json"


class Dataset(NamedTuple):
    """What a run trains and tests on: numpy uint8 (N, H, W, 3) images and int labels.

    ``train_images`` are what ``Augmentation.training_images`` chose: the plain images and
    the ``cipher`` for augmentation in the client, the encrypted images otherwise (cipher
    None). Test images come encrypted and are never augmented."""
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    cipher: object = None
    class_names: tuple[str, ...] | None = None


def split_training(labels: np.ndarray, val_size: int, train_subset: int | None,
                   num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, validation indices) of the training set.

    Validation: ``val_size`` images, class-balanced, the *last* of each class in data order;
    training: the first ``train_subset`` (class-balanced) of the rest, or all of the rest.
    No randomness: every seed and scheme holds out, and trains on, the same images.
    """
    rest = np.arange(len(labels))
    val = np.array([], dtype=np.int64)
    if val_size:
        if val_size >= len(labels):
            raise ValueError(f"val_size {val_size} leaves no training images of {len(labels)}")
        val = np.sort(len(labels) - 1 - select_subset(labels[::-1], val_size, num_classes))
        rest = np.setdiff1d(rest, val)
    if train_subset:
        if train_subset > len(rest):
            raise ValueError(f"train_subset {train_subset} exceeds the {len(rest)} training images "
                             f"left after holding out val_size {val_size}")
        rest = rest[select_subset(labels[rest], train_subset, num_classes)]
    return rest, val


def _checked(config: TrainConfig, data: Dataset) -> tuple[Dataset, tuple[np.ndarray, np.ndarray]]:
    """The data set reduced to the configured subsets, and the held-out validation split."""
    k = config.num_classes
    train_x, train_y = _check_split(data.train_images, data.train_labels, "training", k)
    test_x, test_y = _check_split(data.test_images, data.test_labels, "test", k)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise ValueError(f"training and test images differ in shape: {train_x.shape[1:]} vs {test_x.shape[1:]}")
    names = tuple(data.class_names) if data.class_names is not None else tuple(str(i) for i in range(k))
    if len(names) != k:
        raise ValueError(f"class_names has {len(names)} names for {k} classes")
    keep, held = split_training(train_y, config.val_size, config.train_subset, k)
    if config.test_subset:
        chosen = select_subset(test_y, config.test_subset, k)
        test_x, test_y = test_x[chosen], test_y[chosen]
    return (Dataset(train_x[keep], train_y[keep], test_x, test_y, data.cipher, names),
            (train_x[held], train_y[held]))


@contextlib.contextmanager
def cpu_threads(n: int | None, device: torch.device):
    """``torch.set_num_threads(n)`` on a CPU for the duration (results depend on it)."""
    before = torch.get_num_threads()
    if n is not None and device.type == "cpu":
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TrainingDiverged(ValueError):
    """A loss became NaN or infinite: the settings do not train (nothing is written as a result)."""


def _evaluate(s: Session, x: torch.Tensor | None, y: torch.Tensor | None, k: int) -> dict | None:
    return None if x is None or not len(x) else scores(predict(s, x), y, k)


def run(config: TrainConfig, data: Dataset, out_dir: str | os.PathLike = "build/train", *,
        extra: dict | None = None, progress: bool = True,
        on_epoch_end: Callable[[dict], None] | None = None, resume: bool = True) -> dict:
    """Train and evaluate one configuration; write checkpoint.pt, epochs.csv, metrics.json
    (``METRIC_KEYS``) and run.json (everything else); return both merged.

    With ``resume`` an existing checkpoint in ``out_dir`` is continued (it must match).
    ``on_epoch_end(row)`` is called after each epoch's checkpoint is on disk.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    augmentation = augment.Augmentation(config.augment, data.cipher)
    data, (val_images, val_labels) = _checked(config, data)
    out_dir = _writable_dir(out_dir)
    for name in (EPOCHS_CSV, METRICS, RUN_INFO):
        remove_interrupted_writes(out_dir / name)
    device = resolve_device(config.device)
    fp = checkpoints.fingerprint(config.to_dict(), [data.train_images, data.train_labels, data.test_images,
                                                    data.test_labels], data.cipher, data.train_images.shape[1:3])
    log = tqdm.write if progress else (lambda *_: None)
    k = config.num_classes

    with deterministic(device.type == "cpu"), cpu_threads(config.threads, device), stall_watchdog():
        x_train, y_train = to_device(data.train_images, device), torch.from_numpy(data.train_labels).to(device)
        x_test, y_test = to_device(data.test_images, device), torch.from_numpy(data.test_labels).to(device)
        x_val = to_device(augmentation.as_seen(val_images), device) if len(val_images) else None
        y_val = torch.from_numpy(val_labels).to(device)
        s = start_session(config, x_train, y_train, augmentation,
                          channel_stats(augmentation.as_seen(data.train_images)))
        history, first_epoch = _resume(s, out_dir / CHECKPOINT, fp, log) if resume else ([], 0)
        if not s.channels_last and config.channels_last:
            log(f"channels_last off on this CPU: {', '.join(channels_last_hazards(s.model))} "
                "would hang oneDNN (see train.channels_last_hazards)")
        logits = None
        for epoch in range(first_epoch, config.epochs):
            started = time.perf_counter()
            row = train_epoch(s, epoch, progress)
            val = test = None
            if config.eval_every_epoch or epoch == config.epochs - 1:
                val = _evaluate(s, x_val, y_val, k)
                logits = predict(s, x_test)
                test = scores(logits, y_test, k)
            row["seconds"] = time.perf_counter() - started  # training and this epoch's evaluation
            row.update({f"{split}_{m}": (result[m] if result else None)
                        for split, result in (("val", val), ("test", test)) for m in ("loss", "acc")})
            bad = [c for c in ("train_loss_smoothed", "val_loss", "test_loss")
                   if row[c] is not None and not math.isfinite(row[c])]
            if bad:
                raise TrainingDiverged(f"{', '.join(bad)} not finite after epoch {epoch + 1}: "
                                       f"lr {config.lr} does not train this configuration")
            history.append({c: row[c] for c in EPOCH_COLUMNS})
            _save_checkpoint(s, out_dir, fp, epoch, history)
            write_epochs_csv(out_dir / EPOCHS_CSV, history)
            log(f"epoch {epoch + 1}/{config.epochs}: train loss (smoothed) {row['train_loss_smoothed']:.4f} "
                f"acc {row['train_acc']:.4f}" + (f" | test loss {test['loss']:.4f} acc {test['acc']:.4f}" if test else ""))
            if on_epoch_end is not None:
                on_epoch_end(dict(history[-1]))
        if logits is None:  # a finished run, resumed: evaluate once more
            logits = predict(s, x_test)
        final, val = scores(logits, y_test, k), _evaluate(s, x_val, y_val, k)
        results = {"test_acc": final["acc"], "test_loss": final["loss"],
                   "val_acc": val["acc"] if val else None, "val_loss": val["loss"] if val else None,
                   "per_class_acc": dict(zip(data.class_names, final["per_class"]))}
        if config.eval_tta and augmentation.flip_tta_valid:
            results["test_acc_tta"] = scores(predict(s, x_test, flip_tta=True), y_test, k)["acc"]
        results.update(_summary(config, s, history, len(x_test), len(val_images), fp))  # inside: threads
    write_epochs_csv(out_dir / EPOCHS_CSV, history)
    return write_results(out_dir, results, extra)


def write_results(out_dir: Path, results: dict, extra: dict | None) -> dict:
    """metrics.json (``METRIC_KEYS``) and run.json (the rest, with ``extra``); returns both merged."""
    clash = sorted(set(extra or {}) & set(results))
    if clash:
        raise ValueError(f"extra keys {clash} clash with what train.run records")
    results = {**results, **(extra or {})}
    write_json(out_dir / METRICS, {k: results[k] for k in METRIC_KEYS})
    write_json(out_dir / RUN_INFO, {k: v for k, v in results.items() if k not in METRIC_KEYS})
    return results


def _save_checkpoint(s: Session, out_dir: Path, fp: str, epoch: int, history: list[dict]) -> None:
    checkpoints.save(out_dir / CHECKPOINT, {
        "fingerprint": fp, "config": s.config.to_dict(), "epoch": epoch + 1,
        "model": s.model.state_dict(), "optimizer": s.optimizer.state_dict(),
        "schedule": {"step": (epoch + 1) * s.steps_per_epoch, "steps_per_epoch": s.steps_per_epoch},
        "rng": checkpoints.rng_state(s.generator), "history": history,
        "normalisation": {"mean": _scale01(s.mean), "std": _scale01(s.std)}})


def _writable_dir(out_dir) -> Path:
    """``out_dir``, created; a folder that cannot be written is found now, not after an epoch."""
    out_dir = Path(out_dir)
    check_writable(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def _scale01(t: torch.Tensor) -> list[float]:
    return [float(v) / 255 for v in t.flatten()]


def _resume(s: Session, path: Path, fp: str, log) -> tuple[list[dict], int]:
    """Load the checkpoint at ``path`` into the session, if there is one: (history, next epoch)."""
    state = checkpoints.load(path, fp, s.config.to_dict())
    if state is None:
        return [], 0
    s.model.load_state_dict(state["model"])
    s.optimizer.load_state_dict(state["optimizer"])
    checkpoints.restore_rng_state(state["rng"], s.generator)
    log(f"resuming {path} after epoch {state['epoch']}/{s.config.epochs}")
    return list(state["history"]), int(state["epoch"])


def _summary(config: TrainConfig, s: Session, history: list[dict], n_test: int, n_val: int,
             fingerprint: str) -> dict:
    # wall time: epochs (training + evaluation), summed over resumed parts; images/s: the median
    # epoch, so torch.compile's first epoch does not skew it
    return {
        "train_loss_smoothed": history[-1]["train_loss_smoothed"], "train_acc": history[-1]["train_acc"],
        "epochs": config.epochs, "train_images": len(s.x_train), "val_images": n_val, "test_images": n_test,
        "wall_time_s": sum(r["seconds"] for r in history),
        "images_per_s": float(np.median([r["images_per_s"] for r in history])),
        "device": device_description(s.device), "dtype": "bf16" if s.amp else "fp32",
        "isa": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
        "recipe": config.recipe, "seed": config.seed,
        "parameters": models.count_parameters(s.model), "channels_last": s.channels_last,
        "normalisation": {"mean": _scale01(s.mean), "std": _scale01(s.std)},
        "config": config.to_dict(), "fingerprint": fingerprint, "torch": torch.__version__,
    }


def measure_speed(config: TrainConfig, n_images: int, epochs: int = 2, image_shape=(32, 32),
                  cipher=None) -> list[dict]:
    """Training throughput on random uint8 images: ``epochs`` passes, no evaluation, no files.

    Returns one row per epoch (``seconds``, ``images_per_s``); the first includes warm-up
    (and ``torch.compile``), so quote the later ones.
    """
    device = resolve_device(config.device)
    generator = torch.Generator().manual_seed(config.seed)
    x = torch.randint(0, 256, (n_images, 3, *image_shape), dtype=torch.uint8, generator=generator).to(device)
    y = torch.randint(0, config.num_classes, (n_images,), generator=generator).to(device)
    config = dataclasses.replace(config, drop_last=True)
    augmentation = augment.Augmentation(config.augment, cipher if augment.Augmentation.reads_plain(config.augment) else None)
    s = start_session(config, x, y, augmentation, normalisation=([0.5] * 3, [0.29] * 3))
    with stall_watchdog():
        return [train_epoch(s, epoch) for epoch in range(epochs)]
