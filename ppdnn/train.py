"""Training and evaluation of one configuration: recipes, the loop, checkpoints, metrics.

Data stay on the training device as uint8 (N, 3, H, W); each batch is augmented there
(see ``ppdnn.augment``), encrypted there for augmentation in the client, and normalised
on the fly with per-channel mean/std of the training images *as the network sees them*
(the encrypted images for encrypted runs, before augmentation).

Recipes
- ``paper``: Sec. 4.1 exactly: SGD, momentum 0.9, lr 0.1 divided by 10 at epochs 150
  and 225 of 300, weight decay 5e-4, batch 128, no Nesterov, no label smoothing, fp32.
  With fewer epochs (CPU profiles) the two milestones stay at 50% and 75% of the run, at
  fractional epochs (3 epochs: after 1.5 and 2.25), so 300 epochs give exactly 150 and 225.
- ``fast``: for a GPU. Departures from the paper, each taken from the public fast
  CIFAR-10 ResNet-18 baseline (KellerJordan/cifar10-zoo, ``train_resnet18_94.py``: same
  network, 26 epochs, batch 500, 93.4% without / 94.0% with flip TTA on an A100):
    1. 30 epochs instead of 300 (4 more than the baseline, because we keep the paper's
       augmentation: zero-padded shift + flip, no cutout, no reflect padding);
    2. batch 512 instead of 128, last incomplete batch dropped (fixed shapes for compile);
    3. Nesterov momentum 0.9 instead of plain momentum;
    4. peak lr 0.2 (the baseline's value at batch 500) with a triangular schedule: linear
       from 0.2x to 1x over the first 20% of the steps, then linear to 0, per step;
    5. label smoothing 0.2 on the training loss (test loss is plain cross-entropy);
    6. bf16 autocast and ``torch.compile`` (CUDA only; the same recipe runs in fp32
       without compile on CPU); channels_last memory layout, like every recipe here (it
       changes no arithmetic, only speed: ~1.4x on CPU as well);
    7. flip test-time augmentation as an *additional* figure (``test_acc_tta``); the
       headline ``test_acc`` is always the un-augmented test set, as in the paper.
  Weight decay stays 5e-4 and applies to every parameter, as in the paper's recipe.
  Not measured on a GPU in this project yet: whether it keeps plain accuracy >= 93%.

Runs survive faults: a checkpoint after every epoch (written atomically) holds model,
optimiser, schedule position, RNG states (global torch CPU/CUDA and the dedicated
shuffling/augmentation generator) and a fingerprint of configuration, data and key.
A restarted run resumes from it; on CPU the final metrics are bit-identical to an
uninterrupted run. A corrupt checkpoint or one from another configuration raises
``CheckpointError`` naming the file.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import augment as aug
from . import models
from .files import atomic_write

AUGMENT_SITES = ("client", "cloud", "none")
SCHEDULES = ("multistep", "triangular")
DEVICES = ("cpu", "cuda", "auto")
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
EPOCHS_CSV = "epochs.csv"
EPOCH_COLUMNS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr",
                 "seconds", "images_per_s")
CHECKPOINT_FORMAT = "ppdnn-train-checkpoint-v1"
PAPER_MILESTONE_FRACTIONS = (0.5, 0.75)  # 150 and 225 of 300 epochs


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, not ours, or from another configuration."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run. Defaults are the paper's recipe (Sec. 4.1)."""
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
    seed: int = 0
    device: str = "auto"
    amp: bool = False                       # bf16 autocast, CUDA only
    channels_last: bool = True              # memory layout only: ~1.4x faster on CPU too
    compile: bool = False                   # torch.compile, CUDA only
    eval_tta: bool = False                  # also report flip-TTA test accuracy
    eval_batch_size: int = 250             # small batches evaluate fastest on a CPU (cache)
    num_classes: int = 10

    def __post_init__(self):
        def check(ok, message):
            if not ok:
                raise ValueError(f"TrainConfig: {message}")
        check(self.recipe in RECIPES, f"unknown recipe {self.recipe!r}; choose one of {tuple(RECIPES)}")
        check(self.schedule in SCHEDULES, f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")
        check(self.augment in AUGMENT_SITES, f"unknown augment {self.augment!r}; choose one of {AUGMENT_SITES}")
        check(self.adaptation in models.ADAPTATIONS,
              f"unknown adaptation {self.adaptation!r}; choose one of {models.ADAPTATIONS}")
        check(self.device in DEVICES, f"unknown device {self.device!r}; choose one of {DEVICES}")
        for name in ("epochs", "batch_size", "width", "eval_batch_size", "num_classes"):
            value = getattr(self, name)
            check(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                  f"{name} must be a positive int, got {value!r}")
        for name in ("train_subset", "test_subset"):
            value = getattr(self, name)
            check(value is None or (isinstance(value, int) and value >= 1),
                  f"{name} must be None or a positive int, got {value!r}")
        check(0.0 <= self.label_smoothing < 1.0, f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        check(self.lr > 0 and self.weight_decay >= 0 and 0 <= self.momentum < 1,
              "lr must be > 0, weight_decay >= 0 and momentum in [0, 1)")
        check(0.0 <= self.warmup_fraction < 1.0, f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.milestones is None:
            # fractional epochs: with 3 epochs the drops come after 1.5 and 2.25 epochs,
            # not both at epoch 2; with 300 they are exactly the paper's 150 and 225
            scaled = tuple(f * self.epochs for f in PAPER_MILESTONE_FRACTIONS)
            object.__setattr__(self, "milestones", scaled)
        else:
            object.__setattr__(self, "milestones", tuple(float(m) for m in self.milestones))

    @classmethod
    def from_recipe(cls, recipe: str = "paper", **overrides) -> "TrainConfig":
        """The recipe's settings with ``overrides``; unknown keys raise ValueError."""
        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}; choose one of {tuple(RECIPES)}")
        names = {f.name for f in dataclasses.fields(cls)} - {"recipe"}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig key(s) {', '.join(map(repr, unknown))}; "
                             f"valid keys: {', '.join(sorted(names))}")
        return cls(recipe=recipe, **{**RECIPES[recipe], **overrides})

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


RECIPES: dict[str, dict] = {
    "paper": dict(epochs=300, batch_size=128, lr=0.1, momentum=0.9, nesterov=False,
                  weight_decay=5e-4, schedule="multistep", lr_gamma=0.1, label_smoothing=0.0,
                  drop_last=False, amp=False, channels_last=True, compile=False, eval_tta=False),
    "fast": dict(epochs=30, batch_size=512, lr=0.2, momentum=0.9, nesterov=True,
                 weight_decay=5e-4, schedule="triangular", warmup_fraction=0.2, start_factor=0.2,
                 label_smoothing=0.2, drop_last=True, amp=True, channels_last=True, compile=True,
                 eval_tta=True, eval_batch_size=1000),
}


# ----------------------------------------------------------------------- helpers
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


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


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


def channel_stats(x: torch.Tensor, chunk: int = 10_000, transform=None) -> tuple[list[float], list[float]]:
    """Exact per-channel mean/std (on the [0, 1] scale) of uint8 (N, C, H, W) images, via histograms.

    ``transform`` (e.g. ``cipher.encrypt``) is applied chunk by chunk first.
    """
    hist = torch.zeros(x.shape[1], 256, dtype=torch.float64, device=x.device)
    for part in x.split(chunk):
        part = transform(part) if transform is not None else part
        for c in range(part.shape[1]):
            hist[c] += part[:, c].reshape(-1).bincount(minlength=256).double()
    values = torch.arange(256, dtype=torch.float64, device=x.device) / 255
    n = hist.sum(1)
    mean = (hist * values).sum(1) / n
    var = (hist * (values[None] - mean[:, None]) ** 2).sum(1) / n
    return [float(m) for m in mean], [float(s) for s in var.sqrt().clamp_min(1e-6)]


def normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 -> float32 normalised; ``mean``/``std`` are (1, C, 1, 1) on the 0..255 scale."""
    x = (x.float() - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def fingerprint(config: TrainConfig, arrays: list[np.ndarray], cipher=None, image_shape=(32, 32)) -> str:
    """Hash of the configuration, the training/test data and (for client augmentation) the key."""
    h = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
    for a in arrays:
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(hashlib.blake2b(np.ascontiguousarray(a).data, digest_size=32).digest())
    if cipher is not None:
        h.update(_key_probe(cipher, image_shape))
    return h.hexdigest()


def _key_probe(cipher, image_shape) -> bytes:
    """The encryption of a fixed image whose channels differ at every pixel identifies the key."""
    height, width = image_shape
    pixel = torch.arange(height * width).reshape(1, 1, height, width)
    probe = ((pixel + 85 * torch.arange(3).reshape(1, 3, 1, 1)) % 256).to(torch.uint8)
    out = cipher.encrypt(probe)
    return hashlib.sha256(out.cpu().numpy().tobytes()).digest()


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


def write_epochs_csv(path: Path, history: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=EPOCH_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write(path, lambda f: f.write(text.getvalue().encode()))


def write_json(path: Path, obj: dict) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


# ------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, state: dict) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path, expected_fingerprint: str, config: TrainConfig) -> dict:
    """Read a checkpoint with ``weights_only=True``; refuse corrupt ones and other configurations."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {str(exc)[:200]}); "
                              "it is corrupt or not a ppdnn checkpoint - delete it to start afresh") from None
    required = {"format", "fingerprint", "config", "epoch", "model", "optimizer", "schedule", "rng", "history"}
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or not required <= set(state):
        raise CheckpointError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint; delete it to start afresh")
    if state["fingerprint"] != expected_fingerprint:
        saved, now = state["config"], config.to_dict()
        diffs = [f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(saved) | set(now))
                 if saved.get(k) != now.get(k)]
        what = "; ".join(diffs) if diffs else "same settings but different data or key"
        raise CheckpointError(f"{path} belongs to another configuration ({what}); "
                              "use another out_dir or delete the checkpoint")
    return state


def _rng_state(generator: torch.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "generator": generator.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(rng: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["generator"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


# --------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict(net, x: torch.Tensor, mean, std, batch_size: int, flip_tta: bool = False,
            amp: bool = False, channels_last: bool = False) -> torch.Tensor:
    """Float32 logits for uint8 (N, C, H, W) images; ``flip_tta`` averages with the mirrored image."""
    outs = []
    for part in x.split(batch_size):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            inp = normalise(part, mean, std, channels_last)
            logits = net(inp).float()
            if flip_tta:
                logits = 0.5 * (logits + net(inp.flip(-1)).float())
        outs.append(logits)
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
def run(config: TrainConfig, train_images, train_labels, test_images, test_labels,
        cipher=None, out_dir: str | os.PathLike = "build/train", extra: dict | None = None,
        class_names: tuple[str, ...] | None = None, progress: bool = True,
        on_epoch_end: Callable[[dict], None] | None = None, resume: bool = True) -> dict:
    """Train and evaluate one configuration; write checkpoint.pt, epochs.csv and metrics.json.

    Images are numpy uint8 (N, H, W, 3). For ``augment="client"`` pass the *plain* training
    images and the ``cipher``; each augmented batch is encrypted on the device. Otherwise
    pass the (encrypted) training images as the network should see them and ``cipher=None``.
    Test images always come already encrypted and are never augmented.
    With ``resume`` an existing checkpoint in ``out_dir`` is continued (it must match).
    ``on_epoch_end(row)`` is called after each epoch's checkpoint is on disk.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if config.augment == "client" and cipher is None:
        raise ValueError("augment='client' needs cipher=...: pass the plain training images and the key")
    if config.augment != "client" and cipher is not None:
        raise ValueError(f"augment={config.augment!r} takes the encrypted training images and cipher=None")
    k = config.num_classes
    train_images, train_labels = _check_split(train_images, train_labels, "training", k)
    test_images, test_labels = _check_split(test_images, test_labels, "test", k)
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(f"training and test images differ in shape: {train_images.shape[1:]} vs {test_images.shape[1:]}")
    if config.train_subset:
        keep = select_subset(train_labels, config.train_subset, k)
        train_images, train_labels = train_images[keep], train_labels[keep]
    if config.test_subset:
        keep = select_subset(test_labels, config.test_subset, k)
        test_images, test_labels = test_images[keep], test_labels[keep]
    class_names = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(k))
    if len(class_names) != k:
        raise ValueError(f"class_names has {len(class_names)} names for {k} classes")
    extra = dict(extra or {})

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / CHECKPOINT
    device = resolve_device(config.device)
    cuda = device.type == "cuda"
    amp, channels_last = config.amp and cuda, config.channels_last
    print_ = tqdm.write if progress else (lambda *_: None)
    fp = fingerprint(config, [train_images, train_labels, test_images, test_labels], cipher,
                     train_images.shape[1:3])

    with deterministic(not cuda):
        if cuda:
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(config.seed)
        model = models.build(config.adaptation, config.width, config.bn_relu, k).to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        generator = torch.Generator().manual_seed(config.seed)  # shuffling + augmentation, on CPU
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                    nesterov=config.nesterov, weight_decay=config.weight_decay)
        x_train, y_train = to_device(train_images, device), torch.from_numpy(train_labels).to(device)
        x_test, y_test = to_device(test_images, device), torch.from_numpy(test_labels).to(device)
        encrypt = cipher.encrypt if config.augment == "client" else None
        mean01, std01 = channel_stats(x_train, transform=encrypt)
        mean = torch.tensor(mean01, device=device).reshape(1, -1, 1, 1) * 255
        std = torch.tensor(std01, device=device).reshape(1, -1, 1, 1) * 255

        n, bs = len(x_train), config.batch_size
        steps = n // bs if config.drop_last else math.ceil(n / bs)
        if not config.drop_last and n % bs == 1:
            steps -= 1  # a one-image batch breaks BatchNorm in training mode
        if steps < 1:
            raise ValueError(f"{n} training images give no full batch of {bs}")

        history, start_epoch = [], 0
        if resume and checkpoint_path.exists():
            state = load_checkpoint(checkpoint_path, fp, config)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            _set_rng_state(state["rng"], generator)
            history, start_epoch = list(state["history"]), int(state["epoch"])
            print_(f"resuming {checkpoint_path} after epoch {start_epoch}/{config.epochs}")

        net = torch.compile(model) if (config.compile and cuda) else model
        for epoch in range(start_epoch, config.epochs):
            row = _train_epoch(config, net, optimizer, generator, x_train, y_train, mean, std,
                               encrypt, epoch, steps, amp, channels_last, progress)
            model.eval()
            logits = predict(net, x_test, mean, std, config.eval_batch_size, False, amp, channels_last)
            test = scores(logits, y_test, k)
            row.update(test_loss=test["loss"], test_acc=test["acc"])
            row["seconds"] = time.perf_counter() - row.pop("_start")
            history.append({c: row[c] for c in EPOCH_COLUMNS})
            save_checkpoint(checkpoint_path, {
                "format": CHECKPOINT_FORMAT, "fingerprint": fp, "config": config.to_dict(),
                "epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": {"step": (epoch + 1) * steps, "steps_per_epoch": steps},
                "rng": _rng_state(generator), "history": history,
                "normalisation": {"mean": mean01, "std": std01}})
            write_epochs_csv(out_dir / EPOCHS_CSV, history)
            print_(f"epoch {epoch + 1}/{config.epochs}: train loss {row['train_loss']:.4f} "
                   f"acc {row['train_acc']:.4f} | test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f}")
            if on_epoch_end is not None:
                on_epoch_end(dict(history[-1]))

        model.eval()
        if start_epoch == config.epochs:  # a finished run, resumed: evaluate once more
            logits = predict(net, x_test, mean, std, config.eval_batch_size, False, amp, channels_last)
        final = scores(logits, y_test, k)  # otherwise the last epoch's test logits
        metrics = {
            "test_acc": final["acc"], "test_loss": final["loss"],
            "per_class_acc": dict(zip(class_names, final["per_class"])),
        }
        # flip TTA flips the ciphertext: that is the training distribution only when the
        # cloud augmented encrypted images (client runs saw encrypt(flip(x)) instead)
        if config.eval_tta and config.augment != "client":
            tta = predict(net, x_test, mean, std, config.eval_batch_size, True, amp, channels_last)
            metrics["test_acc_tta"] = scores(tta, y_test, k)["acc"]
    write_epochs_csv(out_dir / EPOCHS_CSV, history)
    # wall time: epochs only (training + per-epoch evaluation), summed over resumed parts;
    # images/s: the median epoch, so torch.compile's first epoch does not skew it
    metrics.update({
        "train_loss": history[-1]["train_loss"] if history else None,
        "train_acc": history[-1]["train_acc"] if history else None,
        "epochs": config.epochs, "train_images": n, "test_images": len(x_test),
        "wall_time_s": sum(r["seconds"] for r in history),
        "images_per_s": float(np.median([r["images_per_s"] for r in history])) if history else None,
        "device": device_description(device), "recipe": config.recipe, "seed": config.seed,
        "parameters": models.count_parameters(model),
        "normalisation": {"mean": mean01, "std": std01},
        "config": config.to_dict(), "fingerprint": fp, "torch": torch.__version__,
    })
    clash = sorted(set(extra) & set(metrics))
    if clash:
        raise ValueError(f"extra keys {clash} clash with metrics written by train.run")
    metrics.update(extra)
    write_json(out_dir / METRICS, metrics)
    return metrics


def _train_epoch(config, net, optimizer, generator, x_train, y_train, mean, std, encrypt,
                 epoch, steps, amp, channels_last, progress) -> dict:
    """One pass over a fresh permutation; returns the epoch's training figures."""
    device, n, bs = x_train.device, len(x_train), config.batch_size
    start = time.perf_counter()
    net.train()
    order = torch.randperm(n, generator=generator).to(device)
    offsets = aug.draw_offsets(n, generator, device=device) if config.augment != "none" else None
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress,
               leave=False, unit="batch")
    lr = config.lr
    for step in range(steps):
        batch = slice(step * bs, (step + 1) * bs)
        idx = order[batch]
        x, y = x_train[idx], y_train[idx]
        if offsets is not None:
            x = aug.shift_flip(x, offsets[batch])
        if encrypt is not None:
            x = encrypt(x)
        lr = learning_rate(config, epoch * steps + step, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = net(normalise(x, mean, std, channels_last))
        loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach().double() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        bar.update()
        if progress and (step % 10 == 9 or step == steps - 1):
            bar.set_postfix(loss=f"{float(loss_sum) / seen:.3f}", acc=f"{int(correct) / seen:.3f}",
                            img_s=f"{seen / (time.perf_counter() - start):.0f}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    bar.close()
    return {"epoch": epoch + 1, "train_loss": float(loss_sum) / seen, "train_acc": int(correct) / seen,
            "lr": lr, "images_per_s": seen / seconds, "_start": start}


def plot_learning_curves(out_dir_or_history, title: str | None = None):
    """Loss and accuracy per epoch (train and test) from ``epochs.csv``; returns the figure."""
    import matplotlib.pyplot as plt
    import pandas as pd
    source = out_dir_or_history
    frame = (pd.DataFrame(source) if isinstance(source, list)
             else pd.read_csv(Path(source) / EPOCHS_CSV))
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    for split in ("train", "test"):
        ax_loss.plot(frame["epoch"], frame[f"{split}_loss"], marker="o", label=split)
        ax_acc.plot(frame["epoch"], 100 * frame[f"{split}_acc"], marker="o", label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def measure_speed(config: TrainConfig, n_images: int, epochs: int = 2, image_shape=(32, 32),
                  cipher=None, progress: bool = False) -> list[dict]:
    """Training throughput on random uint8 images: ``epochs`` passes, no evaluation, no files.

    Returns one row per epoch (``seconds``, ``images_per_s``); the first includes warm-up
    (and ``torch.compile``), so quote the later ones.
    """
    device = resolve_device(config.device)
    cuda = device.type == "cuda"
    amp, channels_last = config.amp and cuda, config.channels_last
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = models.build(config.adaptation, config.width, config.bn_relu, config.num_classes).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if (config.compile and cuda) else model
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                nesterov=config.nesterov, weight_decay=config.weight_decay)
    x = torch.randint(0, 256, (n_images, 3, *image_shape), dtype=torch.uint8, generator=generator).to(device)
    y = torch.randint(0, config.num_classes, (n_images,), generator=generator).to(device)
    mean = torch.full((1, 3, 1, 1), 127.5, device=device)
    std = torch.full((1, 3, 1, 1), 73.9, device=device)
    steps = n_images // config.batch_size
    if steps < 1:
        raise ValueError(f"{n_images} images give no full batch of {config.batch_size}")
    encrypt = cipher.encrypt if (cipher is not None and config.augment == "client") else None
    rows = []
    for epoch in range(epochs):
        row = _train_epoch(config, net, optimizer, generator, x, y, mean, std, encrypt, epoch, steps,
                           amp, channels_last, progress)
        row["seconds"] = time.perf_counter() - row.pop("_start")
        rows.append(row)
    return rows
