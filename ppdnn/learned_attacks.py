"""The learning-based attacks of the literature: GAN-Attack and ITN-Attack.

They follow the public code of Ito et al. (``ito-hiroki/learnable_encryption_robustness``;
read, not copied), which attacks the pixel scheme of this paper, Tanaka's and EtC:

- **GAN-Attack** (ciphertext only; the attacker is the server storing the encrypted
  training set). A generator maps ciphertexts to images a discriminator cannot tell from
  plain natural images. The two sides are unpaired: the ciphertexts are half of the
  training split under the data set's key, the "real" images the other half, in plain
  (public natural images, disjoint from the ciphertexts' plaintexts). It is applied to
  the test set under the same key.
- **ITN-Attack** (key-agnostic; anyone holding a ciphertext and public images). The
  attacker trains an inverse network on plain images, each encrypted under a fresh key
  of his own drawing (the algorithm is public), then applies it to ciphertexts under the
  key he never saw.

Networks as theirs: for a scheme that keeps every pixel's values at its position
(``block_aligned`` false) four 1x1 convolutions; for a block scheme a 4x4 convolution of
stride 4, two 1x1 convolutions and PixelShuffle(4). The discriminator is theirs (4x4
convolutions, spectral norm on the second) except its last pooling: the maximum over the
whole 5x5 logit map, where their MaxPool2d(3) takes the top-left 3x3 window only. Optimisers and
batches as theirs: GAN Adam 2e-4 (0.5, 0.999), batch 64, 25 epochs; ITN SGD 0.01,
momentum 0.9, weight decay 5e-4, batch 128, 50 epochs, mean squared error.

Deviations (README, deviation log): their ITN applies a sigmoid to the generator's tanh
output while its targets lie in [-1, 1], so it cannot fit a negative value and their
published ITN scores (about 0) say nothing: here the loss is on the tanh output. Their
ITN keeps the epoch of least loss on a held-out tenth: here the last epoch is kept.
Networks are scored in eval mode (running batch-norm statistics). On a CPU a faithful
run takes hours, so a profile gives each attack a budget (``Budget``) in epochs over at
most ``train_images`` images per side (at most half the training split, where the
literature uses all of it): rows below the literature's epochs are labelled under-trained.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from . import attacks, ciphers, security
from .ciphers.engine import BLOCK, apply_numpy

GAN_EPOCHS, GAN_BATCH, GAN_LR, GAN_BETAS = 25, 64, 2e-4, (0.5, 0.999)
ITN_EPOCHS, ITN_BATCH, ITN_LR, ITN_MOMENTUM, ITN_WEIGHT_DECAY = 50, 128, 0.01, 0.9, 5e-4
LITERATURE_TRAIN_IMAGES = 50_000   # both attacks train on all of CIFAR-10's training split
MIN_IMAGES = 2                     # fewer is no training set
GAN_MIN_SIDE = 16                  # the discriminator's three 4x4 convolutions need 16x16 at least
GAN = "GAN-Attack"
ITN = "ITN-Attack (key-agnostic)"
SCORE_BATCH = 512


@dataclass(frozen=True)
class Budget:
    """How much each attack trains: epochs over at most ``train_images`` images (None: half
    the training split, see ``split_public``), scored on ``test_images`` test images, on
    ``device``."""
    gan_epochs: float = GAN_EPOCHS
    itn_epochs: float = ITN_EPOCHS
    train_images: int | None = None
    test_images: int = 10_000
    device: str = "cpu"

    def __post_init__(self):
        for name in ("gan_epochs", "itn_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1000:
                raise ValueError(f"{name} must be a number in (0, 1000], got {value!r}")
        for name, low in (("train_images", MIN_IMAGES), ("test_images", 1)):
            value = getattr(self, name)
            if value is None and name == "train_images":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int of at least {low}, got {value!r}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")


# ---------------------------------------------------------------- networks
def generator(block: int):
    """Their generator (also their ITN's network): 1x1 convolutions for ``block`` 1, else
    a ``block`` x ``block`` convolution of stride ``block``, 1x1 convolutions and
    PixelShuffle(``block``). Output in [-1, 1] (tanh)."""
    from torch import nn

    def layer(conv, channels):
        return [conv, nn.BatchNorm2d(channels), nn.ReLU(True)]

    if block == 1:
        body = [*layer(nn.Conv2d(3, 64, 1), 64), *layer(nn.Conv2d(64, 128, 1), 128),
                *layer(nn.Conv2d(128, 256, 1), 256), nn.Conv2d(256, 3, 1)]
    else:
        units = 3 * block * block
        body = [*layer(nn.Conv2d(3, units, block, stride=block), units),
                *layer(nn.Conv2d(units, units, 1), units),
                *layer(nn.Conv2d(units, 32 * block * block, 1), 32 * block * block),
                nn.PixelShuffle(block), nn.Conv2d(32, 3, 1)]
    return _initialised(nn.Sequential(*body, nn.Tanh()))


def discriminator():
    """Their discriminator, one logit per image: the maximum of the whole logit map (5x5 on
    32x32 images; their MaxPool2d(3) pools its top-left 3x3 window only)."""
    from torch import nn

    return _initialised(nn.Sequential(
        nn.Conv2d(3, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.utils.spectral_norm(nn.Conv2d(64, 128, 4, 2, 1, bias=False)), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(128, 1, 4, 1, 0, bias=False), nn.AdaptiveMaxPool2d(1), nn.Flatten(0)))


def _initialised(net):
    """DCGAN's initialisation, as theirs: convolutions N(0, 0.02), batch norm N(1, 0.02), 0."""
    from torch import nn

    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            weight = getattr(module, "weight_orig", module.weight)  # spectral norm keeps the original
            nn.init.normal_(weight, 0.0, 0.02)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, 0.02)
            nn.init.zeros_(module.bias)
    return net


def block_size(configuration: ciphers.Configuration) -> int:
    """The generator's block: ``BLOCK`` for a block-aligned scheme, else 1 (pixel-wise)."""
    return BLOCK if configuration.cipher_class.block_aligned else 1


# ---------------------------------------------------------------- tensors
def to_tensor(images: np.ndarray, device):
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1], as their data sets; laid out
    channels_last (the numpy layout), which changes no arithmetic."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1


def on_device(net, device):
    """``net`` on ``device``, channels_last where oneDNN runs it safely (about 1.5x faster
    on a CPU for the 1x1 generator; ``train.channels_last_hazards``)."""
    import torch

    from .train import channels_last_hazards

    net = net.to(device)
    if torch.device(device).type == "cpu" and channels_last_hazards(net):
        return net
    return net.to(memory_format=torch.channels_last)


def reconstruct(net, encrypted: np.ndarray, device="cpu") -> np.ndarray:
    """The network's images for uint8 ciphertexts (N, H, W, 3), as uint8 (eval mode)."""
    import torch

    net.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(encrypted), SCORE_BATCH):
            y = net(to_tensor(encrypted[start:start + SCORE_BATCH], device))
            out.append(((y + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out)


def _epoch_batches(n: int, batch: int, epochs: float, generator) -> list:
    """Index arrays of batches over shuffled epochs of ``n`` images, ``epochs`` x ``n``
    images in all (at least one); an epoch's last batch may be short, as a DataLoader's."""
    import torch

    target, out, seen = max(1, round(epochs * n)), [], 0
    while seen < target:
        order = torch.randperm(n, generator=generator).numpy()
        for start in range(0, n, batch):
            take = order[start:start + min(batch, target - seen)]
            out.append(take)
            seen += len(take)
            if seen == target:
                break
    return out


def _matching_batches(batches: list, n: int, generator) -> list:
    """One batch of indices into ``n`` images per batch of ``batches``, of the same length,
    from shuffled epochs of the ``n`` images (the GAN's real side)."""
    import torch

    total = sum(len(b) for b in batches)
    stream = np.concatenate([torch.randperm(n, generator=generator).numpy() for _ in range(-(-total // n))])
    return np.split(stream[:total], np.cumsum([len(b) for b in batches])[:-1])


# ---------------------------------------------------------------- the attacks
def check_training_images(images, name: str) -> np.ndarray:
    x = attacks.check_images(images, name)
    if len(x) < MIN_IMAGES:
        raise ValueError(f"{name}: a learned attack needs at least {MIN_IMAGES} images, got {len(x)}")
    return x


def train_gan(encrypted: np.ndarray, real: np.ndarray, block: int, epochs: float, seed: int = 0,
              device="cpu"):
    """GAN-Attack: a generator trained on uint8 ciphertexts ``encrypted`` against unpaired
    plain ``real`` images. Returns (generator, facts: epochs, steps, images seen, seconds)."""
    import torch

    encrypted = check_training_images(encrypted, "encrypted")
    real = check_training_images(real, "real")
    if encrypted.shape[1:] != real.shape[1:]:
        raise ValueError(f"encrypted {encrypted.shape[1:]} and real {real.shape[1:]} images differ in shape")
    if min(encrypted.shape[1:3]) < GAN_MIN_SIDE:
        raise ValueError(f"GAN-Attack's discriminator needs images of at least {GAN_MIN_SIDE}x{GAN_MIN_SIDE}, "
                         f"got {encrypted.shape[1]}x{encrypted.shape[2]}")
    torch.manual_seed(seed)
    net_g, net_d = on_device(generator(block), device), on_device(discriminator(), device)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=GAN_LR, betas=GAN_BETAS)
    opt_d = torch.optim.Adam(net_d.parameters(), lr=GAN_LR, betas=GAN_BETAS)
    bce = torch.nn.BCEWithLogitsLoss()  # their BCELoss on a sigmoid, computed stably
    draw = torch.Generator().manual_seed(seed)
    fakes = _epoch_batches(len(encrypted), GAN_BATCH, epochs, draw)
    reals = _matching_batches(fakes, len(real), draw)
    start = time.perf_counter()
    for fake_index, real_index in zip(fakes, reals):
        n = len(fake_index)
        x_real, x_enc = to_tensor(real[real_index], device), to_tensor(encrypted[fake_index], device)
        ones, zeros = torch.ones(n, device=device), torch.zeros(n, device=device)
        fake = net_g(x_enc)
        opt_d.zero_grad()
        (bce(net_d(x_real), ones) + bce(net_d(fake.detach()), zeros)).backward()
        opt_d.step()
        opt_g.zero_grad()
        bce(net_d(fake), ones).backward()
        opt_g.step()
    return net_g, _facts(fakes, len(encrypted), start)


def encrypt_under_own_keys(images: np.ndarray, configuration: ciphers.Configuration,
                           rng: np.random.Generator) -> np.ndarray:
    """Each image under a fresh key of the attacker's own drawing (the public algorithm)."""
    cls, shape = configuration.cipher_class, images.shape[1:3]
    flat = images.reshape(len(images), -1)
    out = np.empty_like(flat)
    for i in range(len(images)):
        out[i] = apply_numpy(cls.generate(rng, shape, **configuration.options).table(), flat[i:i + 1])[0]
    return out.reshape(images.shape)


def train_itn(plain: np.ndarray, configuration: ciphers.Configuration, epochs: float, seed: int = 0,
              device="cpu"):
    """ITN-Attack: an inverse network trained on ``plain`` images, each under a fresh key of
    the attacker's own for ``configuration``. Returns (network, facts)."""
    import torch

    plain = check_training_images(plain, "plain")
    torch.manual_seed(seed)
    net = on_device(generator(block_size(configuration)), device)
    opt = torch.optim.SGD(net.parameters(), lr=ITN_LR, momentum=ITN_MOMENTUM, weight_decay=ITN_WEIGHT_DECAY)
    keys = np.random.default_rng(seed)
    batches = _epoch_batches(len(plain), ITN_BATCH, epochs, torch.Generator().manual_seed(seed))
    start = time.perf_counter()
    for index in batches:
        x = plain[index]
        y = net(to_tensor(encrypt_under_own_keys(x, configuration, keys), device))
        loss = torch.nn.functional.mse_loss(y, to_tensor(x, device))  # tanh output vs [-1, 1]: no sigmoid
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net, _facts(batches, len(plain), start)


def _facts(batches: list, n: int, start: float) -> dict:
    seen = sum(len(b) for b in batches)
    return {"steps": len(batches), "images_seen": seen, "epochs": round(seen / n, 4),
            "train_images": n, "seconds": round(time.perf_counter() - start, 2)}


# ---------------------------------------------------------------- the table
def split_public(train_images: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(images the server stores encrypted, public plain images): the even and the odd
    images of ``2 * limit`` spread evenly over the training split (every class), at most
    ``limit`` each, so neither attack ever sees the plaintext of a ciphertext it trains on."""
    train = check_training_images(train_images, "train_images")
    n = len(train) // 2 if limit is None else min(limit, len(train) // 2)
    if n < MIN_IMAGES:
        raise ValueError(f"train_images: a learned attack needs at least {2 * MIN_IMAGES} images, got {len(train)}")
    spread = security.evenly_spaced(train, 2 * n)  # the split is stored class by class
    return spread[0::2][:n], spread[1::2][:n]


def attack_table(train_images: np.ndarray, test_images: np.ndarray, budget: Budget, key_seed: int = 0,
                 configurations=None, seed: int = 0, n_examples: int = 4):
    """GAN-Attack and ITN-Attack on every configuration that encrypts (default one per
    scheme), with the pipeline's keys (``ciphers.make_for_configuration``), scored on
    ``test_images`` under the same key. Returns (DataFrame, examples for the figure)."""
    import pandas as pd
    import torch

    stored, public = split_public(train_images, budget.train_images)
    test = attacks.check_images(test_images, "test_images")
    if test.shape[1:] != stored.shape[1:]:
        raise ValueError(f"train images {stored.shape[1:]} and test images {test.shape[1:]} differ in shape")
    rows, examples = [], {}
    for configuration in security.attacked_configurations(test.shape[1:3], configurations):
        cipher = ciphers.make_for_configuration(configuration, key_seed, test.shape[1:3])
        encrypted_test = cipher.encrypt(test)
        trained = {GAN: train_gan(cipher.encrypt(stored), public, block_size(configuration),
                                  budget.gan_epochs, seed, budget.device),
                   ITN: train_itn(public, configuration, budget.itn_epochs, seed, budget.device)}
        examples[cipher.label] = {"original": test[:n_examples], "encrypted": encrypted_test[:n_examples]}
        for attack, (net, facts) in trained.items():
            recovered = reconstruct(net, encrypted_test, budget.device)
            examples[cipher.label][attack] = recovered[:n_examples]
            literature = GAN_EPOCHS if attack == GAN else ITN_EPOCHS
            rows.append({"configuration": configuration.name, "scheme": cipher.label, "attack": attack,
                         **LEARNED_THREATS[attack],
                         "ciphertexts_used": facts["train_images"] if attack == GAN else 1,
                         "n_images": len(test), **attacks.score(test, recovered), **facts,
                         "literature_epochs": literature, "under_trained": facts["epochs"] < literature,
                         "network": "1x1 convolutions" if block_size(configuration) == 1 else
                                    f"{BLOCK}x{BLOCK} blocks", "device": budget.device, "seed": seed,
                         "threads": torch.get_num_threads()})
    return pd.DataFrame(rows), examples


LEARNED_THREATS = {
    GAN: {"attacker": security.SERVER,
          "uses": "encrypted training images, unpaired public plain images, the public algorithm"},
    ITN: {"attacker": security.ONE_CIPHERTEXT,
          "uses": "the ciphertext; public plain images under keys of his own, the public algorithm"},
}
