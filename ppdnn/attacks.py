"""Published attacks on the schemes, and their scores (SSIM, PSNR, exact recovery).

The paper argues security from key-space size alone (Sec. 3.4). Chang & Case (arXiv
2004.13263) broke the pixel-based scheme without searching the key space. This module
runs their attacks, and the same ideas on every other scheme of the project:

Ciphertext-only (the attacker sees encrypted images only)
- ``fold``: every value v > 127 becomes 255 - v. It undoes every negative-positive flip
  at the price of contrast (values end up in 0..127, half the range).
- ``advanced_attack``: decode the pixels in raster order; at each pixel pick, among the
  48 candidates (6 channel permutations x 8 flip patterns; 8 flip patterns when the
  scheme has no colour shuffle), the one closest to the already decoded neighbours.

Chosen-plaintext (the attacker can have images of his choice encrypted with the data
set's key, e.g. by contributing training images)
- ``recover_pixel_key``: one constant (1, 2, 3) image reveals every flip bit and every
  colour permutation of the pixel scheme -> an exact ``ciphers.PixelCipher``.
- ``recover_xor_permutation``: any fixed-key cipher in which each output byte (or 4-bit
  nibble) is some input byte (nibble) XOR a fixed mask is recovered as an equivalent key
  from 1 + ceil(log_base(#positions)) chosen images: an all-zero image reveals the masks,
  the others spell each position's index in base 256 (16 for nibbles). This covers the
  pixel scheme, Tanaka (nibble reversal is XOR 15), EtC (block scrambling, rotation,
  inversion and colour shuffle move bytes, negative-positive is XOR 255) and a fixed-key
  stream cipher with pixel scrambling (the chaotic/RC4 baseline).
- ``recover_tanaka_key``: the same on nibbles, translated into ``ciphers.TanakaCipher``.

Scoring: ``score`` (SSIM and PSNR from scikit-image, averaged over images, and the
fraction of images recovered exactly) and ``security_table`` (scheme x attack).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import ciphers
from .files import atomic_write

# Table 1 of the paper: out[..., c] = in[..., PERMUTATIONS[k, c]].
PERMUTATIONS = ciphers.PERMUTATIONS
# The 48 global transforms of a colour image that leave the neighbour criterion unchanged:
# channel permutation k, then XOR 255 on the channels where FLIPS[f] is 1.
FLIPS = np.array([[(f >> 2) & 1, (f >> 1) & 1, f & 1] for f in range(8)], dtype=np.uint8)
TRANSFORM_PERMS = np.repeat(PERMUTATIONS, len(FLIPS), axis=0)        # (48, 3)
TRANSFORM_MASKS = np.tile(FLIPS, (len(PERMUTATIONS), 1)) * np.uint8(255)  # (48, 3)

EncryptOracle = Callable[[np.ndarray], np.ndarray]


# ---------------------------------------------------------------- input checks
def check_images(images, name: str = "images") -> np.ndarray:
    """Return ``images`` as an (N, H, W, 3) uint8 array; a single (H, W, 3) image gets N = 1.

    Raises TypeError for anything but a uint8 numpy array, ValueError for another shape.
    """
    if not isinstance(images, np.ndarray):
        raise TypeError(f"{name}: expected a numpy uint8 array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise TypeError(f"{name}: expected dtype uint8, got {images.dtype}")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3 or 0 in images.shape:
        raise ValueError(f"{name}: expected (N, H, W, 3) or (H, W, 3) RGB images, "
                         f"got shape {images.shape}")
    return images


def _same_shape(images: np.ndarray, out: np.ndarray) -> np.ndarray:
    return out[0] if images.ndim == 3 else out


# ---------------------------------------------------------------- ciphertext-only
def fold(encrypted: np.ndarray) -> np.ndarray:
    """Chang & Case's basic attack: every value v > 127 becomes 255 - v (same shape)."""
    x = check_images(encrypted, "encrypted")
    return _same_shape(encrypted, np.where(x > 127, 255 - x, x))


@dataclass(frozen=True)
class ColourPrior:
    """Log-probabilities of quantised RGB colours in public natural images.

    ``log_prob[r, g, b]`` for bins of width 256 // bins per channel. Used only to choose
    one of the 48 global transforms the neighbour criterion cannot tell apart.
    """
    log_prob: np.ndarray  # (bins, bins, bins) float64

    @property
    def bins(self) -> int:
        return self.log_prob.shape[0]


def colour_prior(images: np.ndarray, bins: int = 16) -> ColourPrior:
    """Fit a ``ColourPrior`` (colour histogram with add-one smoothing) on plain images."""
    x = check_images(images)
    if bins not in (2, 4, 8, 16, 32, 64, 128, 256):
        raise ValueError(f"bins must be a power of two dividing 256, got {bins}")
    counts = np.bincount(_colour_bins(x, bins).ravel(), minlength=bins ** 3) + 1.0
    return ColourPrior(np.log(counts / counts.sum()).reshape(bins, bins, bins))


def _colour_bins(images: np.ndarray, bins: int) -> np.ndarray:
    """Flat histogram index of every pixel, (N, H*W) int64."""
    q = (images >> (8 - int(math.log2(bins)))).astype(np.int64)
    return ((q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]).reshape(len(images), -1)


def apply_transforms(images: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Apply global transform ``index[n]`` (0..47: permutation, then flips) to image n."""
    perms = TRANSFORM_PERMS[index][:, None, None, :]
    out = np.take_along_axis(images, np.broadcast_to(perms, images.shape), axis=-1)
    return out ^ TRANSFORM_MASKS[index][:, None, None, :]


def most_likely_transform(decoded: np.ndarray, prior: ColourPrior, allowed: np.ndarray,
                          chunk: int = 1024) -> np.ndarray:
    """Per image, the allowed global transform under which its colours are most likely."""
    bins = prior.bins
    grid = np.stack(np.meshgrid(*[np.arange(bins)] * 3, indexing="ij"), -1).reshape(-1, 3)
    perms, flips = TRANSFORM_PERMS[allowed], FLIPS[allowed % len(FLIPS)]
    # table[b, t] = log p(colour bin b after transform t); a flip maps bin q to bins-1-q.
    moved = grid[:, perms]                                          # (bins^3, T, 3)
    moved = np.where(flips[None].astype(bool), bins - 1 - moved, moved)
    table = prior.log_prob.ravel()[(moved[..., 0] * bins + moved[..., 1]) * bins + moved[..., 2]]
    best = np.empty(len(decoded), dtype=np.int64)
    for start in range(0, len(decoded), chunk):  # histograms of `chunk` images at a time
        idx = _colour_bins(decoded[start:start + chunk], bins)
        offsets = np.arange(len(idx))[:, None] * bins ** 3
        hist = np.bincount((idx + offsets).ravel(), minlength=len(idx) * bins ** 3)
        scores = hist.reshape(len(idx), -1).astype(np.float64) @ table
        best[start:start + chunk] = allowed[scores.argmax(1)]
    return best


def advanced_attack(encrypted: np.ndarray, shuffle: bool = True,
                    prior: ColourPrior | None = None,
                    first_pixel: np.ndarray | None = None) -> np.ndarray:
    """Chang & Case's advanced ciphertext-only attack on pixel-wise flip (+ shuffle) schemes.

    Pixels are decoded in raster order, all images at once. At each pixel every candidate
    (the ciphertext pixel with its channels permuted and any of them XOR 255; 48 of them,
    or the 8 flip patterns when ``shuffle`` is False) is scored by the sum of L1 colour
    distances to the already decoded left and upper neighbours; the lowest score wins
    (ties: the first candidate). Chang & Case compare with one neighbour only (left in
    the first row, above elsewhere); using both was better on CIFAR-10 (SSIM 0.43 vs 0.40
    with the global ambiguity resolved by an oracle), linear extrapolation was worse.

    The criterion cannot tell an image from any of its 48 global transforms (the same
    permutation and flips applied to every pixel), so the first pixel fixes the answer:
    - ``first_pixel`` (N, 3) uint8 given (Chang & Case seed the scan with the true first
      pixel): the candidate closest to it starts the scan;
    - otherwise the scan starts from the ciphertext pixel as it is, and if ``prior`` is
      given, each decoded image is then mapped by the global transform (among those the
      scheme allows) under which its colours are most likely (``colour_prior``).
    Returns uint8 images of the input's shape.
    """
    images = check_images(encrypted, "encrypted")
    n, height, width, _ = images.shape
    if first_pixel is not None:
        first_pixel = np.asarray(first_pixel)
        if first_pixel.dtype != np.uint8 or first_pixel.shape != (n, 3):
            raise ValueError(f"first_pixel must be ({n}, 3) uint8, "
                             f"got {first_pixel.shape} {first_pixel.dtype}")
        first_pixel = first_pixel.astype(np.int16)
    c = images.astype(np.int16)
    out = np.empty_like(c)
    rows = np.arange(n)[:, None]
    channels = np.arange(3)
    for i in range(height):
        for j in range(width):
            neighbours = ([out[:, i, j - 1]] if j else []) + ([out[:, i - 1, j]] if i else [])
            if not neighbours:
                if first_pixel is None:
                    out[:, 0, 0] = c[:, 0, 0]
                    continue
                neighbours = [first_pixel]
            pixel = c[:, i, j]
            values = np.stack([pixel, 255 - pixel], -1)                   # (N, src, flip)
            # cost[n, dst, src, flip]: distance if channel dst is decoded from src, flipped or not
            cost = sum(np.abs(values[:, None] - nb[:, :, None, None]) for nb in neighbours)
            if not shuffle:
                diag = cost[:, channels, channels]                        # (N, 3, 2)
                out[:, i, j] = values[rows, channels, diag.argmin(-1)]
                continue
            # Flips are independent per channel, so minimise them first, then the permutation.
            best_flip = cost.argmin(-1)                                   # (N, dst, src)
            perm_cost = cost.min(-1)[:, channels, PERMUTATIONS].sum(-1)   # (N, 6)
            src = PERMUTATIONS[perm_cost.argmin(1)]                       # (N, 3)
            out[:, i, j] = values[rows, src, best_flip[rows, channels, src]]
    decoded = out.astype(np.uint8)
    if prior is not None and first_pixel is None:
        allowed = np.arange(len(TRANSFORM_PERMS) if shuffle else len(FLIPS))
        decoded = apply_transforms(decoded, most_likely_transform(decoded, prior, allowed))
    return _same_shape(encrypted, decoded)


# ---------------------------------------------------------------- chosen-plaintext
def _query(encrypt: EncryptOracle, chosen: np.ndarray) -> np.ndarray:
    """Ask the oracle to encrypt ``chosen`` and check that it answers in kind."""
    answer = encrypt(chosen)
    if not isinstance(answer, np.ndarray) or answer.dtype != np.uint8 or answer.shape != chosen.shape:
        raise ValueError("the encryption oracle must return uint8 images of the chosen "
                         f"images' shape {chosen.shape}")
    return answer


def _check_shape(shape) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be (H, W), got {shape!r}") from None
    if height <= 0 or width <= 0:
        raise ValueError(f"shape must be two positive ints, got {shape!r}")
    return height, width


def recover_pixel_key(encrypt: EncryptOracle, shape=(32, 32)):
    """The pixel scheme's key from one chosen image: every pixel (1, 2, 3).

    Step 2 turns value v into v or 255 - v (254, 253, 252 never collide with 1, 2, 3) and
    step 3 moves it, so each encrypted value names its source channel and its flip bit.
    Returns ``ciphers.PixelCipher(flip, perm)``; ``perm`` is None (no step 3) when every
    pixel kept the identity order, which a step-3 key does with probability 6^-(H*W).
    Raises ValueError if the oracle does not behave like the pixel scheme.
    """

    height, width = _check_shape(shape)
    chosen = np.broadcast_to(np.array([1, 2, 3], np.uint8), (height, width, 3)).copy()
    answer = _query(encrypt, chosen).astype(np.int16)
    flipped = answer > 127
    source = np.where(flipped, 255 - answer, answer) - 1                 # (H, W, 3) channel
    match = (source[..., None, :] == ciphers.PERMUTATIONS).all(-1)       # (H, W, 6)
    if not match.any(-1).all():
        raise ValueError("the oracle's answer to the (1, 2, 3) image is not a colour "
                         "permutation with flips: not the pixel scheme")
    perm = match.argmax(-1).astype(np.uint8)
    flip = np.empty((height, width, 3), dtype=np.uint8)
    np.put_along_axis(flip, source, flipped.astype(np.uint8), axis=-1)  # flip acts before the move
    return ciphers.PixelCipher(flip, perm if perm.any() else None)


# Nibble layout inside a 4x4x3 Tanaka block, as in ciphers.TanakaCipher: unit
# plane * 48 + (row * 4 + column) * 3 + channel, plane 0 = low nibbles, plane 1 = high.
TANAKA_BLOCK = 4
TANAKA_UNITS = 2 * TANAKA_BLOCK * TANAKA_BLOCK * 3


def _tanaka_block(units: np.ndarray) -> np.ndarray:
    """(96,) nibbles -> (4, 4, 3) uint8 block."""
    low, high = units.reshape(2, TANAKA_BLOCK, TANAKA_BLOCK, 3).astype(np.uint8)
    return low | (high << 4)


def _tanaka_units(block: np.ndarray) -> np.ndarray:
    """(4, 4, 3) uint8 block -> (96,) nibbles."""
    return np.concatenate([(block & 15).ravel(), (block >> 4).ravel()])


def recover_tanaka_key(encrypt: EncryptOracle, shape=(32, 32)):
    """Tanaka's key from one chosen image (blocks 0..2 used, the rest zero).

    Reversing, permuting (out[q] = in[key[q]]) and reversing again amounts to
    ``out[q] = in[key[q]] XOR m[q]`` with m[q] in {0, 15}, the same in every block. Block 0
    (all zero) reveals m; blocks 1 and 2 hold each position's index in base 16, so
    ``out XOR m`` spells key[q]. Returns ``ciphers.TanakaCipher(key, shape)``, checked
    against the oracle; raises ValueError if the oracle is not Tanaka's scheme.
    """

    height, width = _check_shape(shape)
    if height % TANAKA_BLOCK or width % TANAKA_BLOCK or (height // TANAKA_BLOCK) * (width // TANAKA_BLOCK) < 3:
        raise ValueError(f"Tanaka's scheme needs H, W divisible by 4 and 3 blocks, got {shape!r}")
    position = np.arange(TANAKA_UNITS)
    chosen = np.zeros((height, width, 3), dtype=np.uint8)
    for block, digit in ((1, position % 16), (2, position // 16)):  # blocks 1, 2 of row 0
        chosen[:TANAKA_BLOCK, block * TANAKA_BLOCK:(block + 1) * TANAKA_BLOCK] = _tanaka_block(digit)
    answer = _query(encrypt, chosen)
    blocks = [_tanaka_units(answer[:TANAKA_BLOCK, b * TANAKA_BLOCK:(b + 1) * TANAKA_BLOCK])
              for b in range(3)]
    mask = blocks[0]
    key = (blocks[1] ^ mask).astype(np.int64) + 16 * (blocks[2] ^ mask).astype(np.int64)
    if not np.array_equal(np.sort(key), position):
        raise ValueError("the oracle does not permute nibbles inside 4x4 blocks: not Tanaka's scheme")
    cipher = ciphers.TanakaCipher(key, shape=(height, width))
    if not np.array_equal(cipher.encrypt(chosen), answer):
        raise ValueError("the recovered Tanaka key does not reproduce the oracle's answer")
    return cipher


@dataclass(frozen=True)
class XorPermutationKey:
    """An equivalent key ``y.units[i] = x.units[source[i]] XOR mask[i]`` for (H, W, 3) images.

    Units are bytes in (H, W, 3) order, or with ``nibbles`` 4-bit values in
    (2, H, W, 3) order (low nibbles first).
    """
    shape: tuple[int, int]
    source: np.ndarray  # (U,) int64, a permutation
    mask: np.ndarray    # (U,) uint8
    nibbles: bool = False

    def _units(self, images: np.ndarray) -> np.ndarray:
        flat = images.reshape(len(images), -1)
        return np.concatenate([flat & 15, flat >> 4], axis=1) if self.nibbles else flat

    def _images(self, units: np.ndarray) -> np.ndarray:
        if self.nibbles:
            half = units.shape[1] // 2
            units = units[:, :half] | (units[:, half:] << 4)
        return units.reshape(len(units), *self.shape, 3)

    def _check(self, images) -> np.ndarray:
        x = check_images(images)
        if x.shape[1:3] != self.shape:
            raise ValueError(f"images must be {self.shape} for this key, got {x.shape[1:3]}")
        return x

    def encrypt(self, images: np.ndarray) -> np.ndarray:
        x = self._check(images)
        return _same_shape(images, self._images(self._units(x)[:, self.source] ^ self.mask))

    def decrypt(self, images: np.ndarray) -> np.ndarray:
        y = self._check(images)
        units = np.empty_like(self._units(y))
        units[:, self.source] = self._units(y) ^ self.mask
        return _same_shape(images, self._images(units))


def xor_permutation_queries(shape=(32, 32), nibbles: bool = False) -> np.ndarray:
    """The chosen images of ``recover_xor_permutation``: zeros, then position digits."""
    height, width = _check_shape(shape)
    n_units = height * width * 3 * (2 if nibbles else 1)
    base = 16 if nibbles else 256
    n_digits = max(1, math.ceil(math.log(n_units, base)))
    position = np.arange(n_units)
    digits = [np.zeros(n_units, np.int64)] + [(position // base ** d) % base for d in range(n_digits)]
    key = XorPermutationKey((height, width), position, np.zeros(n_units, np.uint8), nibbles)
    return key._images(np.stack(digits).astype(np.uint8))


def recover_xor_permutation(encrypt: EncryptOracle, shape=(32, 32),
                            nibbles: bool = False) -> XorPermutationKey:
    """Equivalent key of any fixed-key "move units, then XOR a fixed mask" cipher.

    Chosen images: one all-zero image (its encryption is the mask) and ceil(log_base U)
    images whose unit p holds digit d of p in base 256 (16 for nibbles); U = 3*H*W
    bytes, so 3 images for 32x32 bytes, 5 for nibbles. Exact for the pixel scheme, EtC,
    Tanaka (nibbles) and the chaotic/RC4 baseline as implemented (a fixed keystream and
    a fixed scrambling, with no chaining between pixels). A cipher that chains pixels
    or changes its keystream per image would fail the permutation check: ValueError.
    """
    height, width = _check_shape(shape)
    chosen = xor_permutation_queries((height, width), nibbles)
    probe = XorPermutationKey((height, width), np.arange(1), np.zeros(1, np.uint8), nibbles)
    answers = probe._units(_query(encrypt, chosen)).astype(np.int64)
    mask = answers[0]
    base = 16 if nibbles else 256
    source = sum(((answers[d + 1] ^ mask) * base ** d) for d in range(len(answers) - 1))
    if not np.array_equal(np.sort(source), np.arange(len(source))):
        raise ValueError("the oracle is not a fixed permutation of units followed by a fixed "
                         "XOR; this chosen-plaintext attack does not apply")
    key = XorPermutationKey((height, width), source, mask.astype(np.uint8), nibbles)
    if not np.array_equal(key.encrypt(chosen), _query(encrypt, chosen)):
        raise ValueError("the recovered table does not reproduce the oracle's answers")
    return key


# ---------------------------------------------------------------- scoring
def score(original: np.ndarray, recovered: np.ndarray) -> dict:
    """Mean SSIM and PSNR over images (scikit-image, data_range 255) and the exact fraction.

    SSIM: ``structural_similarity(..., channel_axis=-1, data_range=255)`` per image.
    PSNR (``peak_signal_noise_ratio``, data_range 255) of an image recovered exactly is
    infinite, so ``psnr`` is the mean over the images not recovered exactly (inf when
    all are); ``exact_images`` says what fraction was.
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    x, y = check_images(original, "original"), check_images(recovered, "recovered")
    if x.shape != y.shape:
        raise ValueError(f"original {x.shape} and recovered {y.shape} differ in shape")
    ssim = [structural_similarity(a, b, channel_axis=-1, data_range=255) for a, b in zip(x, y)]
    with np.errstate(divide="ignore"):  # identical images: PSNR = inf, on purpose
        psnr = [peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(x, y)]
    exact = (x == y).reshape(len(x), -1).all(1)
    psnr = np.array(psnr)[~exact]
    return {"ssim": float(np.mean(ssim)), "psnr": float(psnr.mean()) if len(psnr) else float("inf"),
            "exact_images": float(exact.mean())}


def key_fraction(true, recovered) -> float:
    """Fraction of key entries recovered: flip bits and permutation codes, or Tanaka's key."""
    if hasattr(true, "flip"):
        parts = [(true.flip, recovered.flip)]
        if true.perm is not None or recovered.perm is not None:
            zeros = np.zeros(true.shape, np.uint8)
            parts.append((zeros if true.perm is None else true.perm,
                          zeros if recovered.perm is None else recovered.perm))
        return float(sum((a == b).sum() for a, b in parts) / sum(a.size for a, _ in parts))
    if hasattr(true, "key"):
        return float((np.asarray(true.key) == np.asarray(recovered.key)).mean())
    raise TypeError(f"no key comparison for {type(true).__name__}")


# The configurations of the table: (scheme, shuffle) for ciphers.make.
CONFIGURATIONS = (("pixel", False), ("pixel", True), ("tanaka", False), ("etc", False),
                  ("chaotic_rc4", False))
ATTACKS = ("none (encrypted)", "fold", "advanced, colour prior",
           "advanced, true first pixel", "chosen plaintext")


def chosen_plaintext(cipher):
    """The strongest chosen-plaintext recovery for ``cipher``'s scheme, with the oracle
    ``cipher.encrypt``: (recovered key or equivalent key, number of chosen images,
    key fraction in the scheme's own parameters or NaN where only an equivalent key is
    recovered: EtC's per-block parameters and the chaotic/RC4 x0, r and RC4 key are never
    needed, and RC4 key recovery from a keystream is not practical)."""
    if cipher.scheme == "pixel":
        key = recover_pixel_key(cipher.encrypt, cipher.shape)
        return key, 1, key_fraction(cipher, key)
    if cipher.scheme == "tanaka":
        key = recover_tanaka_key(cipher.encrypt, cipher.shape)
        return key, 1, key_fraction(cipher, key)
    key = recover_xor_permutation(cipher.encrypt, cipher.shape)
    return key, len(xor_permutation_queries(cipher.shape)), float("nan")


def attack_outputs(cipher, images: np.ndarray, prior: ColourPrior | None) -> tuple[dict, dict]:
    """Every attack's output on ``cipher.encrypt(images)``, and the chosen-plaintext facts."""
    encrypted = cipher.encrypt(images)
    shuffle = not (cipher.scheme == "pixel" and not cipher.shuffle)
    key, n_chosen, fraction = chosen_plaintext(cipher)
    outputs = {"none (encrypted)": encrypted,
               "fold": fold(encrypted),
               "advanced, colour prior": advanced_attack(encrypted, shuffle, prior=prior),
               "advanced, true first pixel": advanced_attack(encrypted, shuffle,
                                                             first_pixel=images[:, 0, 0]),
               "chosen plaintext": key.decrypt(encrypted)}
    return outputs, {"chosen_images": n_chosen, "key_fraction": fraction}


@dataclass
class SecurityReport:
    table: "object"   # pandas DataFrame, one row per (scheme, attack)
    examples: dict    # {scheme label: {"original" / attack: (n_examples, H, W, 3)}}


def security_table(images: np.ndarray, prior_images: np.ndarray | None = None,
                   key_seed: int = 0, configurations=CONFIGURATIONS,
                   n_examples: int = 4) -> SecurityReport:
    """Run every attack on every scheme (keys from ``ciphers.make(..., seed=key_seed)``).

    ``images``: the plain test images the attacks are scored against. ``prior_images``:
    public plain images to fit the colour prior on (the notebook uses the training split,
    disjoint from the test images); None drops the prior (no global disambiguation).
    """
    import pandas as pd

    x = check_images(images)
    prior = None if prior_images is None else colour_prior(prior_images)
    rows, examples = [], {}
    for scheme, shuffle in configurations:
        cipher = ciphers.make(scheme, shape=x.shape[1:3], shuffle=shuffle, seed=key_seed)
        outputs, facts = attack_outputs(cipher, x, prior)
        examples[cipher.label] = {"original": x[:n_examples]} | {
            name: out[:n_examples] for name, out in outputs.items()}
        for name, out in outputs.items():
            chosen = name == "chosen plaintext"
            rows.append({"scheme": cipher.label, "attack": name, "n_images": len(x),
                         **score(x, out),
                         "key_fraction": facts["key_fraction"] if chosen else float("nan"),
                         "chosen_images": facts["chosen_images"] if chosen else 0,
                         "key_space_log10": round(cipher.key_space_log10, 1)})
    return SecurityReport(pd.DataFrame(rows), examples)


def plot_examples(examples: dict, image_index: int = 0):
    """One row per scheme: original, encrypted and each attack's output for one image."""
    import matplotlib.pyplot as plt

    columns = ["original", *ATTACKS]
    fig, axes = plt.subplots(len(examples), len(columns),
                             figsize=(1.6 * len(columns), 1.7 * len(examples)), squeeze=False)
    for row, (scheme, outputs) in enumerate(examples.items()):
        for col, name in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(outputs[name][image_index], interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(name.replace(", ", ",\n"), fontsize=8)
            if col == 0:
                ax.set_ylabel(scheme, fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- files
def table_markdown(table) -> str:
    """The table as GitHub Markdown (no extra dependency), numbers rounded for reading."""
    columns = {"scheme": "scheme", "attack": "attack", "ssim": "SSIM", "psnr": "PSNR (dB)",
               "exact_images": "images exact", "key_fraction": "key recovered",
               "chosen_images": "chosen images"}

    def cell(name, value):
        if isinstance(value, float):
            if np.isnan(value):
                return "–"
            return f"{value:.2f}" if name == "psnr" and np.isfinite(value) else (
                "inf" if not np.isfinite(value) else f"{value:.3f}")
        return str(value)

    lines = ["| " + " | ".join(columns.values()) + " |",
             "|" + "|".join(" --- " for _ in columns) + "|"]
    for row in table.to_dict("records"):
        lines.append("| " + " | ".join(cell(k, row[k]) for k in columns) + " |")
    n = sorted(set(table["n_images"]))
    return (f"Attacks scored on {', '.join(map(str, n))} CIFAR-10 test images "
            f"(SSIM/PSNR against the plain images; mean over images).\n\n" + "\n".join(lines) + "\n")


def write_report(report: SecurityReport, out_dir) -> tuple[Path, Path, Path]:
    """Write ``security.csv``, ``security.md`` and ``security.png`` into ``out_dir``."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    csv = atomic_write(out_dir / "security.csv", lambda f: report.table.to_csv(f, index=False))
    md = atomic_write(out_dir / "security.md", lambda f: f.write(table_markdown(report.table).encode()))
    fig = plot_examples(report.examples)
    try:
        png = atomic_write(out_dir / "security.png", lambda f: fig.savefig(f, format="png", dpi=120))
    finally:
        plt.close(fig)
    return csv, md, png
