"""Published attacks on the schemes, and their scores (SSIM, PSNR, exact recovery).

The paper argues security from key-space size alone (Sec. 3.4). Chang & Case (arXiv
2004.13263) broke the pixel-based scheme without searching the key space. This module
holds their attacks, and the same ideas for every other scheme of the project; the
report over every configuration is :mod:`ppdnn.security`.

Ciphertext-only (the attacker sees encrypted images only)
- ``fold``: every value v > 127 becomes 255 - v (Chang & Case's basic attack). It undoes
  every negative-positive flip at the price of contrast (values end up in 0..127).
- ``advanced_attack``: decode the pixels in raster order; at each pixel pick, among the
  48 candidates (6 channel permutations x 8 flip patterns; 8 flip patterns when the
  scheme has no colour shuffle), the one closest to already decoded neighbours:
  ``method="chang_case"`` is the authors' attack exactly, ``"two_neighbours"`` a variant.

Chosen-plaintext (the attacker can have images of his choice encrypted with the data
set's key, e.g. by contributing training images)
- ``recover_pixel_key``: one constant (1, 2, 3) image reveals every flip bit and every
  colour permutation of the pixel scheme -> an exact ``ciphers.PixelCipher``.
- ``recover_xor_permutation``: any fixed-key cipher in which each output byte (or 4-bit
  nibble) is some input byte (nibble) XOR a fixed mask is recovered as an equivalent key
  from 1 + ceil(log_base(#positions)) chosen images: an all-zero image reveals the masks,
  the others spell each position's index in base 256 (16 for nibbles). This covers every
  scheme of the project (see ``ppdnn.ciphers.engine``): the pixel scheme, Tanaka (nibble
  reversal is XOR 15), EtC and the fixed-key chaotic/RC4 baseline.
- ``recover_tanaka_key``: the same on nibbles, translated into ``ciphers.TanakaCipher``.

Scoring: ``score`` (SSIM and PSNR from scikit-image, averaged over images, and the
fraction of images recovered exactly) and ``key_fraction``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import ciphers
from .ciphers import BLOCK, PERMUTATIONS
from .ciphers.engine import Table, from_units, to_units

# The 48 global transforms of a colour image that leave the neighbour criterion unchanged:
# channel permutation k (Table 1 order), then XOR 255 on the channels where FLIPS[f] is 1.
# FLIPS[f] = the bits of f, red first: the candidate order of Chang & Case's code.
FLIPS = np.array([[(f >> 2) & 1, (f >> 1) & 1, f & 1] for f in range(8)], dtype=np.uint8)
TRANSFORM_PERMS = np.repeat(PERMUTATIONS, len(FLIPS), axis=0)        # (48, 3)
TRANSFORM_MASKS = np.tile(FLIPS, (len(PERMUTATIONS), 1)) * np.uint8(255)  # (48, 3)
ADVANCED_METHODS = ("chang_case", "two_neighbours")

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


def _closest_candidate(pixel: np.ndarray, neighbours: list, shuffle: bool,
                       last_order: bool) -> np.ndarray:
    """The candidate of each ciphertext pixel (N, 3) closest, in summed L1 colour distance,
    to the decoded ``neighbours`` [(N, 3), ...].

    Candidates: channel order k of Table 1 (only the identity without ``shuffle``), then
    any channels XOR 255. Ties among flip patterns go to the first in FLIPS order (no flip
    before a flip, red's bit first); ties among orders to the first, or with
    ``last_order`` to the last order that reaches the minimum.
    """
    rows, channels = np.arange(len(pixel))[:, None], np.arange(3)
    values = np.stack([pixel, 255 - pixel], -1)                       # (N, src, flip)
    # cost[n, dst, src, flip]: distance if channel dst is decoded from src, flipped or not
    cost = sum(np.abs(values[:, None] - nb[:, :, None, None]) for nb in neighbours)
    # The flips are independent per channel, so the first flip pattern of least cost is
    # each channel's own first minimum; the orders are then compared on their sums.
    best_flip = cost.argmin(-1)                                       # (N, dst, src)
    if shuffle:
        order_cost = cost.min(-1)[:, channels, PERMUTATIONS].sum(-1)  # (N, 6)
        if last_order:
            order = len(PERMUTATIONS) - 1 - order_cost[:, ::-1].argmin(1)
        else:
            order = order_cost.argmin(1)
        src = PERMUTATIONS[order]                                     # (N, 3)
    else:
        src = np.broadcast_to(channels, pixel.shape)
    return values[rows, src, best_flip[rows, channels, src]]


def advanced_attack(encrypted: np.ndarray, shuffle: bool = True,
                    prior: ColourPrior | None = None,
                    first_pixel: np.ndarray | None = None,
                    method: str = "chang_case") -> np.ndarray:
    """Chang & Case's advanced ciphertext-only attack on pixel-wise flip (+ shuffle) schemes.

    Pixels are decoded in raster order, all images at once. At each pixel every candidate
    (the ciphertext pixel with its channels in one of Table 1's orders and any of them
    XOR 255: 48 candidates, or the 8 flip patterns when ``shuffle`` is False) is scored by
    its L1 colour distance to already decoded neighbours; the lowest score wins.

    ``method="chang_case"`` (the default): the authors' attack, bit for bit as their
    MATLAB ``SKKAttack/decrypt_diffkey_adv.m``: the neighbour is the left pixel in the
    first row and the upper pixel everywhere else; ties go to the *last* channel order
    that reaches the minimum (their ``break`` leaves only the inner loop over flip
    patterns) and, within it, to the first flip pattern; ``first_pixel`` is taken
    verbatim as the decoded first pixel.
    ``method="two_neighbours"``: this project's variant: the sum of the distances to the
    left and the upper neighbour (where they exist), ties to the first candidate, and
    the scan starts from the candidate of the first pixel closest to ``first_pixel``.
    (Two neighbours scored better on CIFAR-10 in an early measurement; the security
    table reports both.)

    The criterion cannot tell an image from any of its 48 global transforms (the same
    permutation and flips applied to every pixel), so the first pixel fixes the answer:
    with ``first_pixel`` (N, 3) uint8 (Chang & Case seed the scan with the true one) as
    above; otherwise the scan starts from the ciphertext pixel as it is, and if ``prior``
    is given, each decoded image is then mapped by the global transform (among those the
    scheme allows) under which its colours are most likely (``colour_prior``).
    Returns uint8 images of the input's shape.
    """
    if method not in ADVANCED_METHODS:
        raise ValueError(f"method must be one of {ADVANCED_METHODS}, got {method!r}")
    images = check_images(encrypted, "encrypted")
    n, height, width, _ = images.shape
    if first_pixel is not None:
        first_pixel = np.asarray(first_pixel)
        if first_pixel.dtype != np.uint8 or first_pixel.shape != (n, 3):
            raise ValueError(f"first_pixel must be ({n}, 3) uint8, "
                             f"got {first_pixel.shape} {first_pixel.dtype}")
        first_pixel = first_pixel.astype(np.int16)
    authors = method == "chang_case"
    c = images.astype(np.int16)
    out = np.empty_like(c)
    for i in range(height):
        for j in range(width):
            if i == 0 and j == 0:
                if first_pixel is None:
                    out[:, 0, 0] = c[:, 0, 0]
                elif authors:
                    out[:, 0, 0] = first_pixel
                else:
                    out[:, 0, 0] = _closest_candidate(c[:, 0, 0], [first_pixel], shuffle, False)
                continue
            if authors:
                neighbours = [out[:, i - 1, j] if i else out[:, i, j - 1]]
            else:
                neighbours = ([out[:, i, j - 1]] if j else []) + ([out[:, i - 1, j]] if i else [])
            out[:, i, j] = _closest_candidate(c[:, i, j], neighbours, shuffle, last_order=authors)
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


def recover_pixel_key(encrypt: EncryptOracle, shape=(32, 32)) -> ciphers.PixelCipher:
    """The pixel scheme's key from one chosen image: every pixel (1, 2, 3).

    Step 2 turns value v into v or 255 - v (254, 253, 252 never collide with 1, 2, 3) and
    step 3 moves it, so each encrypted value names its source channel and its flip bit.
    Returns ``ciphers.PixelCipher(flip, perm)``; ``perm`` is None (no step 3) when every
    pixel kept the identity order, which a step-3 key does with probability 6^-(H*W).
    Raises ValueError if the oracle does not behave like the pixel scheme.
    """
    height, width = ciphers.check_shape(shape)
    chosen = np.broadcast_to(np.array([1, 2, 3], np.uint8), (height, width, 3)).copy()
    answer = _query(encrypt, chosen).astype(np.int16)
    flipped = answer > 127
    source = np.where(flipped, 255 - answer, answer) - 1                 # (H, W, 3) channel
    match = (source[..., None, :] == PERMUTATIONS).all(-1)               # (H, W, 6)
    if not match.any(-1).all():
        raise ValueError("the oracle's answer to the (1, 2, 3) image is not a colour "
                         "permutation with flips: not the pixel scheme")
    perm = match.argmax(-1).astype(np.uint8)
    flip = np.empty((height, width, 3), dtype=np.uint8)
    np.put_along_axis(flip, source, flipped.astype(np.uint8), axis=-1)  # flip acts before the move
    return ciphers.PixelCipher(flip, perm if perm.any() else None)


def _block_units(block: np.ndarray) -> np.ndarray:
    """(4, 4, 3) uint8 block -> its 96 nibbles in Tanaka's order (low nibbles first)."""
    return to_units(block.reshape(1, -1), nibbles=True)[0]


def recover_tanaka_key(encrypt: EncryptOracle, shape=(32, 32)) -> ciphers.TanakaCipher:
    """Tanaka's key from one chosen image (blocks 0..2 used, the rest zero).

    Reversing, permuting (out[q] = in[key[q]]) and reversing again amounts to
    ``out[q] = in[key[q]] XOR m[q]`` with m[q] in {0, 15}, the same in every block. Block 0
    (all zero) reveals m; blocks 1 and 2 hold each position's index in base 16, so
    ``out XOR m`` spells key[q]. Returns ``ciphers.TanakaCipher(key, shape)``, checked
    against the oracle; raises ValueError if the oracle is not Tanaka's scheme.
    """
    height, width = ciphers.check_shape(shape)
    if height % BLOCK or width % BLOCK or (height // BLOCK) * (width // BLOCK) < 3:
        raise ValueError(f"Tanaka's scheme needs H, W divisible by {BLOCK} and 3 blocks, got {shape!r}")
    position = np.arange(ciphers.TanakaCipher.UNITS)
    chosen = np.zeros((height, width, 3), dtype=np.uint8)
    for block, digit in ((1, position % 16), (2, position // 16)):  # blocks 1, 2 of row 0
        chosen[:BLOCK, block * BLOCK:(block + 1) * BLOCK] = \
            from_units(digit[None].astype(np.uint8), nibbles=True).reshape(BLOCK, BLOCK, 3)
    answer = _query(encrypt, chosen)
    blocks = [_block_units(answer[:BLOCK, b * BLOCK:(b + 1) * BLOCK]) for b in range(3)]
    mask = blocks[0]
    key = (blocks[1] ^ mask).astype(np.int64) + 16 * (blocks[2] ^ mask).astype(np.int64)
    if not np.array_equal(np.sort(key), position):
        raise ValueError("the oracle does not permute nibbles inside 4x4 blocks: not Tanaka's scheme")
    cipher = ciphers.TanakaCipher(key, shape=(height, width))
    if not np.array_equal(cipher.encrypt(chosen), answer):
        raise ValueError("the recovered Tanaka key does not reproduce the oracle's answer")
    return cipher


def xor_permutation_queries(shape=(32, 32), nibbles: bool = False) -> np.ndarray:
    """The chosen images of ``recover_xor_permutation``: zeros, then position digits."""
    height, width = ciphers.check_shape(shape)
    n_units = height * width * 3 * (2 if nibbles else 1)
    base = 16 if nibbles else 256
    n_digits = max(1, math.ceil(math.log(n_units, base)))
    position = np.arange(n_units)
    digits = [np.zeros(n_units, np.int64)] + [(position // base ** d) % base for d in range(n_digits)]
    units = np.stack(digits).astype(np.uint8)
    return from_units(units, nibbles).reshape(len(digits), height, width, 3)


def recover_xor_permutation(encrypt: EncryptOracle, shape=(32, 32),
                            nibbles: bool = False) -> ciphers.TableCipher:
    """Equivalent key of any fixed-key "move units, then XOR a fixed mask" cipher.

    Chosen images: one all-zero image (its encryption is the mask) and ceil(log_base U)
    images whose unit p holds digit d of p in base 256 (16 for nibbles); U = 3*H*W
    bytes, so 3 images for 32x32 bytes, 5 for nibbles. Exact for the pixel scheme, EtC,
    Tanaka (nibbles) and the chaotic/RC4 baseline as implemented (a fixed keystream and
    a fixed scrambling, with no chaining between pixels). A cipher that chains pixels
    or changes its keystream per image would fail the permutation check: ValueError.
    Returns a ``ciphers.TableCipher`` (its table is the equivalent key).
    """
    height, width = ciphers.check_shape(shape)
    chosen = xor_permutation_queries((height, width), nibbles)
    answers = to_units(_query(encrypt, chosen).reshape(len(chosen), -1), nibbles).astype(np.int64)
    mask = answers[0]
    base = 16 if nibbles else 256
    source = sum(((answers[d + 1] ^ mask) * base ** d) for d in range(len(answers) - 1))
    if not np.array_equal(np.sort(source), np.arange(len(source))):
        raise ValueError("the oracle is not a fixed permutation of units followed by a fixed "
                         "XOR; this chosen-plaintext attack does not apply")
    key = ciphers.TableCipher(Table(source.astype(np.intp), mask.astype(np.uint8), nibbles),
                              (height, width))
    if not np.array_equal(key.encrypt(chosen), _query(encrypt, chosen)):
        raise ValueError("the recovered table does not reproduce the oracle's answers")
    return key


# Schemes whose own key (not only an equivalent one) one chosen image reveals.
EXACT_KEY_RECOVERY = {"pixel": recover_pixel_key, "tanaka": recover_tanaka_key}


def chosen_plaintext(cipher: ciphers.Cipher):
    """The strongest chosen-plaintext recovery for ``cipher``'s scheme, with the oracle
    ``cipher.encrypt``: (recovered key or equivalent key, number of chosen images,
    key fraction in the scheme's own parameters or NaN where only an equivalent key is
    recovered: EtC's per-block parameters and the chaotic/RC4 x0, r and RC4 key are never
    needed, and RC4 key recovery from a keystream is not practical)."""
    recover = EXACT_KEY_RECOVERY.get(cipher.scheme)
    if recover is not None:
        key = recover(cipher.encrypt, cipher.shape)
        return key, 1, key_fraction(cipher, key)
    nibbles = cipher.table().nibbles  # the scheme's unit (public), not its key
    key = recover_xor_permutation(cipher.encrypt, cipher.shape, nibbles=nibbles)
    return key, len(xor_permutation_queries(cipher.shape, nibbles)), float("nan")


# ---------------------------------------------------------------- scoring
def score(original: np.ndarray, recovered: np.ndarray) -> dict:
    """Mean (and median) SSIM and mean PSNR over images (scikit-image, data_range 255) and
    the exact fraction. The literature reports box plots: compare medians with theirs.

    SSIM: ``structural_similarity(..., channel_axis=-1, data_range=255)`` per image.
    PSNR (``peak_signal_noise_ratio``, data_range 255) of an image recovered exactly is
    infinite, so ``psnr`` is the mean over the images not recovered exactly (inf when
    all are); ``exact_images`` says what fraction was.
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    x, y = check_images(original, "original"), check_images(recovered, "recovered")
    if x.shape != y.shape:
        raise ValueError(f"original {x.shape} and recovered {y.shape} differ in shape")
    exact = (x == y).reshape(len(x), -1).all(1)
    # An image recovered exactly has SSIM 1 and PSNR inf: compute them for the others only.
    ssim = np.ones(len(x))
    ssim[~exact] = [structural_similarity(a, b, channel_axis=-1, data_range=255)
                    for a, b in zip(x[~exact], y[~exact])]
    psnr = np.array([peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(x[~exact], y[~exact])])
    return {"ssim": float(np.mean(ssim)), "ssim_median": float(np.median(ssim)),
            "psnr": float(psnr.mean()) if len(psnr) else float("inf"), "exact_images": float(exact.mean())}


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
