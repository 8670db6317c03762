"""Ciphertext-only attacks on a whole encrypted data set (the server's view).

Every scheme of the project encrypts a data set with one fixed table, ``y = x[index] ^
mask`` over bytes or 4-bit values (:mod:`ppdnn.ciphers.engine`). The server that stores
the encrypted training set holds thousands of samples of that one table, and natural
images are statistically regular across a data set: neighbouring values are strongly
positively correlated, green correlates most with the other two channels, images are
darker than mid-grey and redder than blue on average. The attacks here read the table
from those regularities and never search the key space.

- ``pixel`` (step 2, and steps 2+3): a raster scan decodes each pixel as the one of its
  8 (flip patterns) or 48 (channel orders x flips) candidates whose values correlate
  best, across ciphertexts, with its already decoded neighbours; two more sweeps with
  all four neighbours fix early mistakes. That leaves one global transform of the whole
  data set open, chosen from public statistics (``choose_global_transform``).
- every other scheme, and any scheme added later: ``marginal_mask_attack``, generic: the
  scheme's mask alphabet is learned from keys the attacker draws himself (the algorithm
  is public), and each unit's mask is the one under which its values across ciphertexts
  are most likely under the published ImageNet mean and spread; positions stay put.

Public statistics come from a source disjoint from the attacked data set: the published
ImageNet mean colour (0.485, 0.456, 0.406) and standard deviation, fixed figures; never
CIFAR-10. ``public_images`` (crops of scikit-image's sample photographs) serves tests.

Every result says how far to trust it: ``margin`` (the weakest global decision as a t
statistic over groups of ciphertexts; 0 = a coin toss) and ``plausible`` (the fraction of decoded ciphertexts that look like natural
images); ``confident`` combines them. Too few ciphertexts, foreign shapes or a data set
under several keys raise ValueError.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import ciphers
from .ciphers import PERMUTATIONS, Table, TableCipher
from .ciphers.engine import to_units

# The published ImageNet mean colour (torchvision's normalisation constants), in 0..255:
# the attacker's only prior on mean colour. Darker than mid-grey, red > green > blue.
PUBLIC_MEAN_RGB = 255.0 * np.array([0.485, 0.456, 0.406])
PUBLIC_STD = 255.0 * np.mean([0.229, 0.224, 0.225])
# scikit-image sample photographs (public, shipped with the package, never CIFAR-10).
PUBLIC_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
# Mean absolute difference between adjacent values: natural 32x32 photographs stay well
# below (CIFAR-10 training images: 99.9th percentile 31), uniform noise is about 85.
NATURAL_ROUGHNESS_MAX = 50.0
NATURAL_SEAM_RATIO_MAX = 2.0
MIN_CIPHERTEXTS = 2
CONFIDENT_PLAUSIBLE, CONFIDENT_MARGIN = 0.9, 3.0
OWN_KEYS = 8  # keys the attacker draws himself to learn a scheme's mask alphabet


@dataclass(frozen=True)
class DatasetAttack:
    """A recovered table (the encryption direction, as ``Cipher.table()``) and its trust."""
    table: Table
    shape: tuple[int, int]
    method: str
    n_ciphertexts: int
    margin: float      # weakest global decision as a t statistic (0: a coin toss; >= 3: sure)
    plausible: float   # fraction of decoded ciphertexts that look like natural images
    seconds: float

    @property
    def confident(self) -> bool:
        return self.plausible >= CONFIDENT_PLAUSIBLE and self.margin >= CONFIDENT_MARGIN

    def decrypt(self, encrypted: np.ndarray) -> np.ndarray:
        """Decrypt (N, H, W, 3) uint8 images encrypted under the attacked key."""
        x = check_ciphertexts(encrypted, "encrypted", minimum=1)
        if x.shape[1:3] != self.shape:
            raise ValueError(f"encrypted: images are {x.shape[1:3]}, the attacked data set "
                             f"was {self.shape}")
        return TableCipher(self.table, self.shape).decrypt(x)


# ---------------------------------------------------------------- input checks
def check_ciphertexts(images, name: str = "encrypted", minimum: int = MIN_CIPHERTEXTS) -> np.ndarray:
    """``images`` as (N, H, W, 3) uint8 with N >= ``minimum``; TypeError/ValueError otherwise."""
    if not isinstance(images, np.ndarray):
        raise TypeError(f"{name}: expected a numpy uint8 array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise TypeError(f"{name}: expected dtype uint8, got {images.dtype}")
    if images.ndim != 4 or images.shape[-1] != 3 or 0 in images.shape[1:]:
        raise ValueError(f"{name}: expected (N, H, W, 3) RGB images, got shape {images.shape}")
    if len(images) < minimum:
        raise ValueError(f"{name}: a data-set attack needs at least {minimum} ciphertexts, "
                         f"got {len(images)}")
    return images


# ---------------------------------------------------------------- public statistics
@lru_cache(maxsize=4)
def public_images(size: int = 32, per_photo: int = 64, seed: int = 0) -> np.ndarray:
    """Crops of scikit-image's sample photographs, resized to ``size`` x ``size``:
    natural images from a source disjoint from any attacked data set."""
    import skimage.data
    from skimage.transform import resize

    rng = np.random.default_rng(seed)
    crops = []
    for name in PUBLIC_PHOTOS:
        photo = getattr(skimage.data, name)()[..., :3]
        for _ in range(per_photo):
            side = int(rng.integers(size, min(photo.shape[:2]) // 2))
            top = int(rng.integers(0, photo.shape[0] - side))
            left = int(rng.integers(0, photo.shape[1] - side))
            crop = resize(photo[top:top + side, left:left + side], (size, size), anti_aliasing=True)
            crops.append((crop * 255).round().astype(np.uint8))
    return np.stack(crops)


def roughness(images: np.ndarray) -> np.ndarray:
    """Per image, the mean absolute difference between horizontally or vertically adjacent
    values of one channel (natural images: small; noise: about 85)."""
    x = images.astype(np.int16)
    return (np.abs(np.diff(x, axis=1)).mean((1, 2, 3)) + np.abs(np.diff(x, axis=2)).mean((1, 2, 3))) / 2


def seam_ratio(images: np.ndarray, block: int = 4) -> np.ndarray:
    """Per image, mean absolute difference across the seams of a ``block`` grid divided by
    that inside blocks: about 1 for natural images, large for shuffled blocks."""
    x = images.astype(np.int16)
    across = [np.abs(np.diff(x, axis=a)) for a in (1, 2)]
    seams = [d.take(np.arange(block - 1, d.shape[a] , block), axis=a) for d, a in zip(across, (1, 2))]
    inner = sum(d.sum((1, 2, 3)) for d in across) - sum(d.sum((1, 2, 3)) for d in seams)
    n_inner = sum(d[0].size for d in across) - sum(d[0].size for d in seams)
    seam = sum(d.sum((1, 2, 3)) for d in seams) / sum(d[0].size for d in seams)
    return seam / np.maximum(inner / n_inner, 1e-9)


def plausible_fraction(decoded: np.ndarray) -> float:
    """Fraction of decoded images that look like natural images: ``roughness`` below
    ``NATURAL_ROUGHNESS_MAX`` and block seams no rougher than ``NATURAL_SEAM_RATIO_MAX``
    times the inside of blocks (catches blocks left in scrambled places)."""
    natural = roughness(decoded) < NATURAL_ROUGHNESS_MAX
    if min(decoded.shape[1:3]) >= 8:
        natural &= seam_ratio(decoded) < NATURAL_SEAM_RATIO_MAX
    return float(natural.mean())


# ---------------------------------------------------------------- the pixel scheme
def _standardise(values: np.ndarray) -> np.ndarray:
    """(N, k) -> zero mean, unit variance per column (constant columns become 0)."""
    v = values.astype(np.float32)
    v -= v.mean(0)
    std = v.std(0)
    return v / np.where(std > 0, std, np.inf)


def _best_candidate(pixel: np.ndarray, reference: np.ndarray, orders: np.ndarray):
    """The channel order and flips of ciphertext ``pixel`` (N, 3 standardised) that best
    correlate with ``reference`` (N, 3: summed standardised decoded neighbours).

    corr[src, dst] is the correlation of ciphertext channel src with decoded channel
    dst; an order takes dst from src = order[dst], its flip is the sign of that entry.
    """
    corr = pixel.T @ reference / len(pixel)                       # (3 src, 3 dst)
    dst = np.arange(3)
    scores = np.abs(corr[orders, dst]).sum(1)                     # (orders,)
    best = int(scores.argmax())
    flips = corr[orders[best], dst] < 0
    return best, flips


def _neighbour_sweeps(z: np.ndarray, orders: np.ndarray, sweeps: int = 3):
    """Per pixel, the order code (into ``orders``) and flips (H, W, 3) relative to pixel
    (0, 0): a raster scan against decoded left/upper neighbours, then ``sweeps - 1``
    sweeps against all four neighbours. ``z``: (H, W, N, 3) standardised ciphertexts
    (pixel-major, so each step reads contiguous memory)."""
    height, width = z.shape[:2]
    code = np.zeros((height, width), np.intp)
    flips = np.zeros((height, width, 3), bool)
    decoded = np.zeros_like(z)
    decoded[0, 0] = z[0, 0]
    done = np.zeros((height, width), bool)
    done[0, 0] = True
    for sweep in range(sweeps):
        for i in range(height):
            for j in range(width):
                if sweep == 0 and i == j == 0:
                    continue
                near = [(a, b) for a, b in ((i, j - 1), (i - 1, j), (i, j + 1), (i + 1, j))
                        if 0 <= a < height and 0 <= b < width and done[a, b]]
                reference = sum(decoded[a, b] for a, b in near)
                code[i, j], flips[i, j] = _best_candidate(z[i, j], reference, orders)
                signs = np.where(flips[i, j], -1.0, 1.0).astype(np.float32)
                decoded[i, j] = z[i, j][:, orders[code[i, j]]] * signs
                done[i, j] = True
    return code, flips


def _groups(n: int, k: int = 10) -> list[np.ndarray]:
    """Indices of min(k, n) disjoint groups of n images (for standard errors), interleaved
    (image i in group i mod k) so that a data set sorted by class still mixes in each."""
    k = min(k, n)
    return [np.arange(start, n, k) for start in range(k)]


def _t(values) -> float:
    """|mean| / standard error of per-group values: how sure a decision is (3: very)."""
    v = np.asarray(values, float)
    se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.inf
    return float(abs(v.mean()) / se) if se > 0 else (np.inf if v.mean() else 0.0)


def choose_global_transform(decoded: np.ndarray, shuffle: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """The global channel order (3,) and flips (3,) that turn ``decoded`` (N images correct
    up to one transform of the whole data set) into natural images, and the margin: the
    smallest t statistic (mean over 10 groups of images / its standard error) of the
    decisions taken.

    Public regularities used: the three channels correlate positively (relative flips);
    images are darker than mid-grey (the global flip: ``PUBLIC_MEAN_RGB`` averages 115);
    with ``shuffle``, green is the channel most correlated with the other two, and red is
    brighter than blue on average (both hold for the published ImageNet mean and for
    photographs generally).
    """
    groups = _groups(len(decoded))
    means = np.stack([decoded[g].reshape(-1, 3).mean(0) for g in groups])          # (K, 3)
    corrs = np.stack([np.nan_to_num(np.corrcoef(decoded[g].reshape(-1, 3).T.astype(np.float32)))
                      for g in groups])                                            # (K, 3, 3)
    flips = np.array([False, corrs[:, 0, 1].mean() < 0, corrs[:, 0, 2].mean() < 0])
    margins = [_t(corrs[:, 0, 1]), _t(corrs[:, 0, 2])]
    signed = np.where(flips, 255.0 - means, means)                                 # (K, 3)
    flip_all = signed.mean() > 127.5
    margins.append(_t(signed.mean(1) - 127.5))
    flips ^= flip_all
    means = np.where(flips, 255.0 - means, means)
    order = np.arange(3)
    if shuffle:
        links = np.abs(corrs).sum(2)                                               # (K, 3)
        ranked = np.argsort(links.mean(0))
        green = ranked[-1]
        red, blue = sorted((c for c in range(3) if c != green), key=lambda c: -means[:, c].mean())
        order = np.array([red, green, blue])
        margins += [_t(links[:, green] - links[:, ranked[-2]]), _t(means[:, red] - means[:, blue])]
    return order, flips, float(min(margins))


def pixel_attack(encrypted: np.ndarray, shuffle: bool) -> DatasetAttack:
    """Recover the pixel scheme's table (step 2, or steps 2+3 with ``shuffle``) from a data
    set encrypted under one key. See the module docstring."""
    start = time.perf_counter()
    x = check_ciphertexts(encrypted)
    n, height, width, _ = x.shape
    orders = np.asarray(PERMUTATIONS if shuffle else PERMUTATIONS[:1])
    z = np.empty((height, width, n, 3), np.float32)
    for i in range(height):  # row by row: a float copy of the whole set would be 4x its size
        z[i] = _standardise(x[:, i].reshape(n, -1)).reshape(n, width, 3).transpose(1, 0, 2)
    code, flips = _neighbour_sweeps(z, orders)
    del z
    # Relative decryption: partly[p, k] = y[p, source[p, k]] ^ 255 * flips[p, k].
    pixel_base = 3 * np.arange(height * width).reshape(height, width, 1)
    rel_index, rel_mask = pixel_base + orders[code], flips.astype(np.uint8) * np.uint8(255)
    partly = _decrypt_with(Table(rel_index.ravel(), rel_mask.ravel()), x)
    order, global_flips, margin = choose_global_transform(partly, shuffle)
    # decoded[p, c] = partly[p, order[c]] ^ 255 * global_flips[order[c]]
    index = rel_index[..., order]
    mask = rel_mask[..., order] ^ (global_flips[order].astype(np.uint8) * np.uint8(255))
    decrypt = Table(index.ravel(), mask.ravel())
    table = decrypt.inverse() if shuffle else Table(None, decrypt.mask)
    decoded = _decrypt_with(decrypt, x)
    method = "neighbour scan, 48 candidates" if shuffle else "neighbour scan, 8 candidates"
    return DatasetAttack(table, (height, width), method, n, margin, plausible_fraction(decoded),
                         time.perf_counter() - start)


def _decrypt_with(decrypt: Table, encrypted: np.ndarray) -> np.ndarray:
    """Apply a decryption table (x = y[index] ^ mask) to (N, H, W, 3) ciphertexts."""
    flat = encrypted.reshape(len(encrypted), -1)
    return (flat[:, decrypt.index] ^ decrypt.mask).reshape(encrypted.shape)


# ---------------------------------------------------------------- any scheme
def mask_alphabet(scheme: str, options: dict, shape) -> tuple[np.ndarray, bool]:
    """The mask values a scheme uses and whether its units are nibbles, learned from
    ``OWN_KEYS`` keys the attacker draws himself (the algorithm is public, the key is not)."""
    values, nibbles = set(), None
    for seed in range(OWN_KEYS):
        table = ciphers.make(scheme, shape, seed=seed, **options).table()
        values |= {0} if table.mask is None else set(np.unique(table.mask).tolist())
        nibbles = table.nibbles
    return np.array(sorted(values), np.intp), bool(nibbles)


def _unit_histograms(units: np.ndarray, levels: int) -> np.ndarray:
    """(N, U) integer units -> (U, levels) counts of each value per unit."""
    offsets = np.arange(units.shape[1]) * levels
    counts = np.bincount((units.astype(np.int64) + offsets).ravel(), minlength=units.shape[1] * levels)
    return counts.reshape(units.shape[1], levels).astype(np.float64)


def public_log_likelihoods(nibbles: bool) -> np.ndarray:
    """log p(value) per unit plane, (planes, levels): bytes (1, 256) or nibbles (2, 16: low,
    high), from a Gaussian over byte values with the published ImageNet mean and standard
    deviation (0.485, 0.456, 0.406; 0.229, 0.224, 0.225): a fixed public figure, so no
    attacked image enters the prior."""
    values = np.arange(256)
    log_p = -0.5 * ((values - PUBLIC_MEAN_RGB.mean()) / PUBLIC_STD) ** 2
    p = np.exp(log_p - log_p.max())
    if nibbles:  # a low nibble is nearly uniform, a high one keeps the byte's shape
        planes = np.stack([p.reshape(16, 16).sum(0), p.reshape(16, 16).sum(1)])
    else:
        planes = p[None]
    return np.log(planes / planes.sum(1, keepdims=True))


def marginal_mask_attack(encrypted: np.ndarray, scheme: str, options: dict | None = None) -> DatasetAttack:
    """Generic attack on any table scheme: each unit's mask is the value of the scheme's
    alphabet (``mask_alphabet``) under which that unit's values across the ciphertexts are
    most likely under public natural-image statistics; positions are kept as they are.

    Exact for masks that only flip (0/255, 0/15) once enough ciphertexts average out;
    with arbitrary byte masks only the high bits are identifiable this way (v and v ^ 1
    are about equally likely in natural images). ``margin``: the median over units of the
    t statistic of the best mask's lead over the runner-up across 10 groups.
    """
    start = time.perf_counter()
    x = check_ciphertexts(encrypted)
    n, height, width, _ = x.shape
    alphabet, nibbles = mask_alphabet(scheme, dict(options or {}), (height, width))
    levels = 16 if nibbles else 256
    # log_lik[v, (plane, m)] = log p_plane(v ^ m): ciphertext value v under mask m, the
    # unit being of that plane (a scheme that moves nibbles may move them across planes)
    log_lik = np.concatenate([log_p[np.arange(levels)[:, None] ^ alphabet[None, :]]
                              for log_p in public_log_likelihoods(nibbles)], axis=1)
    units = to_units(x.reshape(n, -1), nibbles)
    per_group = np.stack([_unit_histograms(units[g], levels) @ log_lik for g in _groups(n)])
    total = per_group.sum(0)                                              # (U, masks)
    best = total.argmax(1)
    if log_lik.shape[1] > 1:
        runner = np.where(np.arange(log_lik.shape[1]) == best[:, None], -np.inf, total).argmax(1)
        lead = np.take_along_axis(per_group, best[None, :, None], 2) - \
            np.take_along_axis(per_group, runner[None, :, None], 2)        # (K, U, 1)
        margin = float(np.median([_t(lead[:, u, 0]) for u in range(lead.shape[1])]))
    else:
        margin = float("inf")
    table = Table(None, alphabet[best % len(alphabet)].astype(np.uint8), nibbles)
    decoded = TableCipher(table, (height, width)).decrypt(x)
    return DatasetAttack(table, (height, width), "unit marginals, positions kept", n, margin,
                         plausible_fraction(decoded), time.perf_counter() - start)


EIGEN_SAMPLES = 5000   # ciphertexts the flip-sign eigenvector is computed from (at most)


def flip_sign_attack(encrypted: np.ndarray, scheme: str, options: dict | None = None) -> DatasetAttack:
    """Generic attack on any scheme whose masks only flip (XOR 255 on bytes, 15 on
    nibbles), whatever it does to positions: all values of a natural image correlate
    positively (shared brightness), so the leading eigenvector of the units' correlation
    across ciphertexts is positive in every unit the mask leaves and negative in every one
    it flips, wherever the unit was moved. One global sign is left: natural images are
    darker than mid-grey. Positions are kept as they are. Units without correlation (low
    nibbles) get a coin toss. ``margin``: t statistic of the global brightness decision.
    """
    start = time.perf_counter()
    x = check_ciphertexts(encrypted)
    n, height, width, _ = x.shape
    alphabet, nibbles = mask_alphabet(scheme, dict(options or {}), (height, width))
    top = 15 if nibbles else 255
    if not np.array_equal(alphabet, [0, top]):
        raise ValueError(f"scheme {scheme!r} masks with {len(alphabet)} values, not only flips")
    units = to_units(x.reshape(n, -1), nibbles)
    z = _standardise(units[:: max(1, n // EIGEN_SAMPLES)])
    vector = np.ones(z.shape[1], np.float32)
    for _ in range(50):  # power iteration on corr = z.T z / n without forming it
        vector = z.T @ (z @ vector)
        vector /= np.linalg.norm(vector) or 1.0
    flipped = vector < 0
    signed = np.where(flipped, top - units, units).astype(np.float32)
    per_group = np.array([signed[g].mean() for g in _groups(n)]) - top / 2
    if per_group.mean() > 0:
        flipped = ~flipped
    table = Table(None, flipped.astype(np.uint8) * np.uint8(top), nibbles)
    decoded = TableCipher(table, (height, width)).decrypt(x)
    return DatasetAttack(table, (height, width), "flip signs from correlations, positions kept",
                         n, _t(per_group), plausible_fraction(decoded), time.perf_counter() - start)


# ---------------------------------------------------------------- dispatch and scores
def attack_dataset(encrypted: np.ndarray, scheme: str, options: dict | None = None) -> DatasetAttack:
    """The strongest data-set attack for ``scheme`` (with its public ``options``, e.g.
    ``{"shuffle": True}``) on ciphertexts of one data set under one unknown key."""
    options = dict(options or {})
    if scheme == "pixel":
        return pixel_attack(encrypted, shuffle=bool(options.get("shuffle", False)))
    x = check_ciphertexts(encrypted)
    alphabet, nibbles = mask_alphabet(scheme, options, x.shape[1:3])
    if len(alphabet) == 2 and alphabet[1] == (15 if nibbles else 255):
        return flip_sign_attack(x, scheme, options)
    return marginal_mask_attack(x, scheme, options)


def _entries(table: Table, units: int) -> tuple[np.ndarray, np.ndarray]:
    """(index, mask) of every unit, with None spelled out (identity, zero mask)."""
    index = np.arange(units) if table.index is None else np.asarray(table.index)
    mask = np.zeros(units, np.uint8) if table.mask is None else np.asarray(table.mask)
    if len(index) != units or len(mask) != units:
        raise ValueError(f"table sizes differ: expected {units} units")
    return index, mask


def table_agreement(true: Table, recovered: Table) -> dict:
    """Fractions of table entries recovered: positions, masks, and both (``table``)."""
    if true.nibbles != recovered.nibbles:
        raise ValueError("the tables work on different units (bytes vs nibbles)")
    units = max(len(a) for a in (true.index, true.mask, recovered.index, recovered.mask) if a is not None)
    (t_index, t_mask), (r_index, r_mask) = _entries(true, units), _entries(recovered, units)
    positions, masks = t_index == r_index, t_mask == r_mask
    return {"positions": float(positions.mean()), "masks": float(masks.mean()),
            "table": float((positions & masks).mean())}


COUNTS = (10, 100, 1000, 10_000, 50_000)


SSIM_IMAGES = 2000  # SSIM/PSNR of a data-set attack: on this many test images at most


def attack_curve(cipher, train_images: np.ndarray, test_images: np.ndarray,
                 counts=COUNTS, seed: int = 0) -> list[dict]:
    """The data-set attack on ``cipher`` as the server sees it, for each number of
    ciphertexts in ``counts`` (capped at the training set's size; each a random subset
    drawn with ``seed``): it gets ``cipher.encrypt`` of those training images only and is
    scored on ``cipher.encrypt(test_images)``: the exact fraction on every test image,
    SSIM and PSNR on ``SSIM_IMAGES`` evenly spaced ones (SSIM is the slow part). One row
    per count."""
    from .attacks import score

    train, test = check_ciphertexts(train_images, "train_images"), check_ciphertexts(test_images, "test_images", 1)
    if train.shape[1:] != test.shape[1:]:
        raise ValueError(f"train images {train.shape[1:]} and test images {test.shape[1:]} differ in shape")
    rng = np.random.default_rng(seed)
    encrypted_test = cipher.encrypt(test)
    rows = []
    for count in sorted({min(int(c), len(train)) for c in counts}):
        seen = cipher.encrypt(train[np.sort(rng.choice(len(train), count, replace=False))])
        result = attack_dataset(seen, cipher.scheme, cipher.options)
        recovered = result.decrypt(encrypted_test)
        agreement = table_agreement(cipher.table(), result.table)
        exact = (recovered == test).reshape(len(test), -1).all(1)
        some = np.unique(np.linspace(0, len(test) - 1, min(SSIM_IMAGES, len(test))).astype(int))
        rows.append({"scheme": cipher.label, "n_ciphertexts": count, "method": result.method,
                     "key_fraction": agreement["table"], "positions": agreement["positions"],
                     "masks": agreement["masks"], **score(test[some], recovered[some]),
                     "exact_images": float(exact.mean()), "ssim_images": len(some),
                     "margin": result.margin, "plausible": result.plausible,
                     "confident": result.confident, "seconds": result.seconds,
                     "n_images": len(test)})
    return rows
