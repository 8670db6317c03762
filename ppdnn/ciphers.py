"""Image encryption schemes of the paper, their keys, key files and key spaces.

Schemes (``SCHEMES``); one key per data set, so the same key encrypts every training
and test image:

- ``plain``        identity (the unencrypted baseline).
- ``pixel``        the proposed pixel-based encryption (Sec. 3.2): step 2, a negative-
                   positive flip ``p XOR 255`` with one key bit per pixel per channel;
                   with ``shuffle=True`` also step 3, one of Table 1's six colour
                   permutations per pixel.
- ``tanaka``       learnable image encryption (ref. [6]) as in the official code
                   (mastnk/ICCE-TW2018, BlockScramble.py): 4x4x3 blocks split into 96
                   4-bit values, reversed / permuted / reversed with one key per data set.
- ``etc``          encryption-then-compression block scrambling (refs. [9, 10]): 4x4
                   blocks, block position scrambling, rotation, inversion, negative-
                   positive and colour shuffle per block.
- ``chaotic_rc4``  a documented approximation of ref. [16]: logistic-map pixel position
                   scrambling followed by an RC4 keystream XOR.

Every scheme is a fixed permutation of positions followed by a fixed XOR,
``y = x[index] ^ mask``, on bytes (or, for ``tanaka``, on 4-bit values). Each cipher only
builds that table from its key; one vectorised routine applies it to numpy arrays
(H, W, 3) / (N, H, W, 3) and to torch uint8 tensors (N, 3, H, W) on any device.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import atomic_write, exclusive_write

SCHEMES = ("plain", "pixel", "tanaka", "etc", "chaotic_rc4")
# Every (scheme, shuffle) configuration of the paper, in the order of Tables 2-3.
CONFIGURATIONS = (("plain", False), ("pixel", False), ("pixel", True),
                  ("tanaka", False), ("etc", False), ("chaotic_rc4", False))
KEY_FORMAT = "ppdnn-cipher-key"
KEY_FORMAT_VERSION = 1
BLOCK = 4  # block side of the block-based schemes (4x4 for 32x32 images, Fig. 1)

# Table 1 of the paper: code -> source channel of the output (R, G, B).
# out[..., c] = in[..., PERMUTATIONS[code, c]]; 0:RGB 1:RBG 2:GRB 3:GBR 4:BRG 5:BGR.
PERMUTATIONS = np.array([[0, 1, 2], [0, 2, 1], [1, 0, 2],
                         [1, 2, 0], [2, 0, 1], [2, 1, 0]], dtype=np.intp)
PERMUTATIONS.flags.writeable = False

_CHUNK_BYTES = 1 << 19  # numpy works on chunks this size so the gather stays in cache
_RC4_KEY_BYTES = 16
_LOGISTIC_TRANSIENT = 1000  # iterations dropped before the scrambling sequence
_X0_RANGE = (0.01, 0.99)
_R_RANGE = (3.99, 4.0)  # deep in the chaotic regime, clear of the periodic windows


# ------------------------------------------------------------ the shared table
@dataclass(frozen=True)
class _Table:
    """``y = x[index] ^ mask`` over flattened units of an image.

    Units are bytes laid out (H, W, 3), or with ``nibbles`` 4-bit values laid out
    (2, H, W, 3) (plane 0: low nibbles, plane 1: high nibbles). ``None`` = identity.
    """
    index: np.ndarray | None
    mask: np.ndarray | None
    nibbles: bool = False

    def inverse(self) -> "_Table":
        if self.index is None:
            return self
        inv = np.argsort(self.index).astype(np.intp)
        mask = None if self.mask is None else self.mask[inv]
        return _Table(inv, mask, self.nibbles)

    def channels_first(self, shape: tuple[int, int]) -> "_Table":
        """The same table for units laid out (planes, 3, H, W)."""
        planes = 2 if self.nibbles else 1
        hwc = np.arange(planes * shape[0] * shape[1] * 3).reshape(planes, *shape, 3)
        chw_to_hwc = hwc.transpose(0, 3, 1, 2).ravel()
        hwc_to_chw = np.argsort(chw_to_hwc)
        index = None if self.index is None else hwc_to_chw[self.index[chw_to_hwc]]
        mask = None if self.mask is None else self.mask[chw_to_hwc]
        return _Table(index, mask, self.nibbles)


def _apply_numpy(table: _Table, x: np.ndarray) -> np.ndarray:
    """Apply ``table`` to ``x`` of shape (N, units); chunked so the gather stays in cache."""
    out = np.empty_like(x)
    n_bytes = x.shape[1]
    rows = max(1, _CHUNK_BYTES // max(n_bytes, 1))
    for start in range(0, x.shape[0], rows):
        part, dst = x[start:start + rows], out[start:start + rows]
        if table.nibbles:
            units = np.concatenate([part & 15, part >> 4], axis=1)
            if table.index is not None:
                units = np.take(units, table.index, axis=1)
            if table.mask is not None:
                units ^= table.mask
            np.left_shift(units[:, n_bytes:], 4, out=dst)
            dst |= units[:, :n_bytes]
        else:
            if table.index is not None:
                np.take(part, table.index, axis=1, out=dst)
            else:
                dst[...] = part
            if table.mask is not None:
                dst ^= table.mask
    return out


def _apply_torch(table: _Table, x, cache: dict):
    """Apply a channels-first ``table`` to a uint8 tensor (N, units) with torch ops."""
    import torch

    key = (id(table), x.device)
    if key not in cache:
        cache[key] = tuple(None if a is None else torch.as_tensor(a).to(x.device)
                           for a in (table.index, table.mask))
    index, mask = cache[key]
    n_bytes = x.shape[1]
    units = torch.cat([x & 15, x >> 4], dim=1) if table.nibbles else x
    if index is not None:
        units = torch.index_select(units, 1, index)
    if mask is not None:
        units = units ^ mask
    if table.nibbles:
        return (units[:, n_bytes:] << 4) | units[:, :n_bytes]
    return units.clone() if units is x else units


# ------------------------------------------------------------ base class
class Cipher:
    """Base class: a key for images of ``shape`` (H, W) and the table it defines."""

    scheme = "plain"

    def __init__(self, shape=(32, 32)):
        self.shape = _check_shape(shape, block=self.scheme in ("tanaka", "etc"))
        self._torch_cache: dict = {}

    # -- what subclasses provide
    def _table(self) -> _Table:
        return _Table(None, None)

    def _key_material(self) -> dict:
        return {}

    @classmethod
    def _from_key_material(cls, material: dict, shape) -> "Cipher":
        return cls(shape=shape, **material)

    @property
    def label(self) -> str:
        return self.scheme

    @property
    def key_space_log10(self) -> float:
        """log10 of the number of distinct keys of this scheme for this image size."""
        return key_space_log10(self.scheme, self.shape,
                               shuffle=getattr(self, "shuffle", False))

    # -- encryption
    @functools.cached_property
    def _tables(self) -> dict:
        forward = self._table()
        inverse = forward.inverse()
        return {"encrypt": (forward, forward.channels_first(self.shape)),
                "decrypt": (inverse, inverse.channels_first(self.shape))}

    def encrypt(self, images):
        """Encrypt uint8 numpy (H, W, 3) / (N, H, W, 3) or torch (N, 3, H, W) images."""
        return self._run("encrypt", images)

    def decrypt(self, images):
        """Invert :meth:`encrypt`; same input types and shapes."""
        return self._run("decrypt", images)

    def _run(self, direction: str, images):
        channels_last, channels_first = self._tables[direction]
        if isinstance(images, np.ndarray):
            batch = self._check_numpy(images)
            out = _apply_numpy(channels_last, batch.reshape(len(batch), 3 * self.shape[0] * self.shape[1]))
            return out.reshape(images.shape)
        if type(images).__module__.startswith("torch"):
            self._check_torch(images)
            flat = images.contiguous().flatten(1)
            if images.device.type == "cpu":  # numpy's chunked gather is the fastest on CPU
                import torch
                out = torch.from_numpy(_apply_numpy(channels_first, flat.numpy()))
            else:
                out = _apply_torch(channels_first, flat, self._torch_cache)
            return out.reshape(images.shape)
        raise TypeError(f"images must be a numpy array or a torch tensor, got {type(images).__name__}")

    def _check_numpy(self, images: np.ndarray) -> np.ndarray:
        if images.dtype != np.uint8:
            raise TypeError(f"images must be uint8, got {images.dtype}")
        expected = (*self.shape, 3)
        if images.ndim not in (3, 4) or images.shape[-3:] != expected:
            raise ValueError(f"images must have shape (H, W, 3) or (N, H, W, 3) with "
                             f"(H, W, 3) = {expected} for this key, got {images.shape}")
        return np.ascontiguousarray(images.reshape(-1, *expected))

    def _check_torch(self, images) -> None:
        import torch
        if images.dtype != torch.uint8:
            raise TypeError(f"image tensors must be torch.uint8, got {images.dtype}")
        expected = (3, *self.shape)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"image tensors must have shape (N, 3, H, W) with (3, H, W) = "
                             f"{expected} for this key, got {tuple(images.shape)}")

    # -- key files
    @functools.cached_property
    def fingerprint(self) -> str:
        """A public identifier of this key (16 hex digits): a hash of scheme, shape and key
        material. Stored with every encrypted output so that decrypting with another key,
        or encrypting twice, is caught; it reveals nothing usable about the key."""
        body = {"scheme": self.scheme, "shape": list(self.shape),
                "key": {k: _encode(v) for k, v in self._key_material().items()}}
        return hashlib.sha256(b"ppdnn-key-fingerprint\0" + json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    def save(self, path, overwrite: bool = False) -> Path:
        """Write the key as JSON, mode 0600. Without ``overwrite`` the file is created
        exclusively (O_EXCL): of two concurrent calls for one path exactly one succeeds,
        so a key can never be replaced silently. With ``overwrite`` it is replaced atomically."""
        path = Path(path)
        body = {"format": KEY_FORMAT, "version": KEY_FORMAT_VERSION, "scheme": self.scheme,
                "shape": list(self.shape),
                "key": {k: _encode(v) for k, v in self._key_material().items()}}
        body["sha256"] = _checksum(body)
        payload = (json.dumps(body, indent=1) + "\n").encode()
        if overwrite:
            atomic_write(path, lambda f: f.write(payload), mode=0o600)
        else:
            exclusive_write(path, payload, mode=0o600,
                            exists_message=f"{path} exists; pass overwrite=True (--force) to replace this key")
        return path

    def __repr__(self) -> str:  # never prints key material
        return f"{type(self).__name__}(label={self.label!r}, shape={self.shape})"


class PlainCipher(Cipher):
    """Identity: the unencrypted baseline, with the same interface as the real schemes."""

    scheme = "plain"


class PixelCipher(Cipher):
    """The proposed pixel-based encryption: step 2 (flip), then optional step 3 (shuffle).

    flip: (H, W, 3) of 0/1; where 1 the value becomes ``p XOR 255`` (Eq. 1).
    perm: (H, W) of codes 0..5 of Table 1 (``PERMUTATIONS``), or None for step 2 only.
    """

    scheme = "pixel"

    def __init__(self, flip, perm=None):
        flip = _key_array(flip, "flip", ndim=3, high=1)
        if flip.shape[2] != 3:
            raise ValueError(f"flip must have shape (H, W, 3), got {flip.shape}")
        super().__init__(flip.shape[:2])
        if perm is not None:
            perm = _key_array(perm, "perm", ndim=2, high=5)
            if perm.shape != self.shape:
                raise ValueError(f"perm must have shape {self.shape} to match flip, got {perm.shape}")
        self.flip, self.perm = flip, perm

    @property
    def shuffle(self) -> bool:
        return self.perm is not None

    @property
    def label(self) -> str:
        return "pixel (step 2+3)" if self.shuffle else "pixel (step 2)"

    def _table(self) -> _Table:
        flip_mask = (self.flip * np.uint8(255)).ravel()
        if self.perm is None:
            return _Table(None, flip_mask)
        pixels = np.arange(self.shape[0] * self.shape[1])[:, None]
        index = (pixels * 3 + PERMUTATIONS[self.perm.ravel()]).ravel()
        return _Table(index, flip_mask[index])  # step 2 then step 3

    def _key_material(self) -> dict:
        return {"flip": self.flip, "perm": self.perm}

    @classmethod
    def _from_key_material(cls, material, shape):
        return cls(**material)


class TanakaCipher(Cipher):
    """Tanaka's learnable image encryption (ref. [6]), as in the official BlockScramble.py.

    Each 4x4x3 block (48 bytes, in row, column, channel order) becomes 96 4-bit values:
    48 low nibbles then 48 high nibbles. ``key`` is one permutation of 0..95 shared by
    every block of every image: the values at positions q with key[q] > 48 are reversed
    (15 - v), the 96 values are permuted (out[q] = in[key[q]]), and the same positions
    are reversed again. The reversal set is derived from the key, as in the official
    code, so the key is the permutation alone.
    """

    scheme = "tanaka"
    UNITS = 2 * BLOCK * BLOCK * 3

    def __init__(self, key, shape=(32, 32)):
        key = _key_array(key, "key", ndim=1, high=self.UNITS - 1, dtype=np.int64)
        if key.shape != (self.UNITS,) or not np.array_equal(np.sort(key), np.arange(self.UNITS)):
            raise ValueError(f"key must be a permutation of 0..{self.UNITS - 1}")
        super().__init__(shape)
        self.key = key

    @property
    def reversed_positions(self) -> np.ndarray:
        """Boolean (96,): positions reversed before and after the permutation."""
        return self.key > self.UNITS // 2

    def _table(self) -> _Table:
        rev = self.reversed_positions.astype(np.uint8) * np.uint8(15)
        local_mask = rev ^ rev[self.key]  # reverse, permute, reverse == permute, XOR this
        blocks = _block_units(self.shape, planes=2)  # (B, 96) unit index of each block
        index = np.empty(blocks.size, dtype=np.intp)
        mask = np.empty(blocks.size, dtype=np.uint8)
        index[blocks] = blocks[:, self.key]
        mask[blocks] = local_mask
        return _Table(index, mask, nibbles=True)

    def _key_material(self) -> dict:
        return {"key": self.key}


class EtcCipher(Cipher):
    """EtC block scrambling (refs. [9, 10]) with 4x4 blocks and one key for all images.

    Key arrays have one entry per output block, shape (H/4, W/4):
    order (flat index of the input block that lands here; a permutation),
    rotation (0..3, multiples of 90 degrees counter-clockwise), inversion (0 none,
    1 horizontal, 2 vertical), negpos (1: every value of the block becomes p XOR 255)
    and colour (Table 1 code). Each block is rotated, then inverted, then colour-shuffled.
    """

    scheme = "etc"

    def __init__(self, order, rotation, inversion, negpos, colour):
        order = _key_array(order, "order", ndim=2, high=None, dtype=np.int64)
        grid = order.shape
        if not np.array_equal(np.sort(order.ravel()), np.arange(order.size)):
            raise ValueError(f"order must be a permutation of the {order.size} block indices")
        arrays = {"order": order}
        for name, value, high in (("rotation", rotation, 3), ("inversion", inversion, 2),
                                  ("negpos", negpos, 1), ("colour", colour, 5)):
            arrays[name] = _key_array(value, name, ndim=2, high=high)
            if arrays[name].shape != grid:
                raise ValueError(f"{name} must have the block grid shape {grid}, "
                                 f"got {arrays[name].shape}")
        super().__init__((grid[0] * BLOCK, grid[1] * BLOCK))
        for name, value in arrays.items():
            setattr(self, name, value)

    def _table(self) -> _Table:
        blocks = _block_units(self.shape, planes=1)  # (B, 48)
        local = _etc_block_patterns()[self.rotation.ravel(), self.inversion.ravel(),
                                      self.colour.ravel()]  # (B, 48)
        index = np.empty(blocks.size, dtype=np.intp)
        index[blocks] = np.take_along_axis(blocks[self.order.ravel()], local, axis=1)
        mask = np.empty(blocks.size, dtype=np.uint8)
        mask[blocks] = (self.negpos.ravel() * np.uint8(255))[:, None]
        return _Table(index, mask)

    def _key_material(self) -> dict:
        return {name: getattr(self, name)
                for name in ("order", "rotation", "inversion", "negpos", "colour")}

    @classmethod
    def _from_key_material(cls, material, shape):
        return cls(**material)


class ChaoticRc4Cipher(Cipher):
    """Approximation of ref. [16] (logistic map + RC4); the paper's exact algorithm is unknown.

    Pixel positions (all three channels together) are scrambled by the argsort of the
    logistic map x <- r x (1 - x) started at ``x0`` (the first 1000 iterations dropped);
    the scrambled image is then XORed with the RC4 keystream of ``rc4_key`` (16 bytes).
    Deviation from a real stream cipher, needed to learn on encrypted images: the same
    keystream (no nonce) encrypts every image of the data set.
    """

    scheme = "chaotic_rc4"

    def __init__(self, x0: float, r: float, rc4_key: bytes, shape=(32, 32)):
        if not isinstance(x0, float) or not _X0_RANGE[0] <= x0 < _X0_RANGE[1]:
            raise ValueError(f"x0 must be a float in [{_X0_RANGE[0]}, {_X0_RANGE[1]}), got {x0!r}")
        if not isinstance(r, float) or not _R_RANGE[0] <= r < _R_RANGE[1]:
            raise ValueError(f"r must be a float in [{_R_RANGE[0]}, {_R_RANGE[1]}), got {r!r}")
        if not isinstance(rc4_key, bytes) or len(rc4_key) != _RC4_KEY_BYTES:
            raise ValueError(f"rc4_key must be {_RC4_KEY_BYTES} bytes")
        super().__init__(shape)
        self.x0, self.r, self.rc4_key = x0, r, rc4_key

    def _table(self) -> _Table:
        n_pixels = self.shape[0] * self.shape[1]
        order = np.argsort(logistic_sequence(self.x0, self.r, n_pixels), kind="stable")
        index = (order[:, None] * 3 + np.arange(3)).ravel()
        keystream = np.frombuffer(rc4_keystream(self.rc4_key, 3 * n_pixels), dtype=np.uint8)
        return _Table(index, keystream.copy())

    def _key_material(self) -> dict:
        return {"x0": self.x0, "r": self.r, "rc4_key": self.rc4_key}


_CLASSES = {"plain": PlainCipher, "pixel": PixelCipher, "tanaka": TanakaCipher,
            "etc": EtcCipher, "chaotic_rc4": ChaoticRc4Cipher}


# ------------------------------------------------------------ making and loading keys
def schemes() -> tuple[str, ...]:
    """Names of every registered scheme (the CLI's and the pipeline's choices)."""
    return SCHEMES


def make(scheme: str, shape=(32, 32), shuffle: bool = False, seed: int | None = None) -> Cipher:
    """A new key for ``scheme`` and images of ``shape`` (H, W).

    ``seed``: an int gives a reproducible key (numpy ``default_rng(seed)``); None draws
    256 bits of OS entropy (``secrets``) to seed the generator, for real use.
    ``shuffle`` (step 3) only applies to ``pixel``.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {SCHEMES}")
    if shuffle and scheme != "pixel":
        raise ValueError(f"shuffle=True (step 3) only applies to 'pixel', not {scheme!r}")
    if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)
                             or seed < 0):
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    shape = _check_shape(shape, block=scheme in ("tanaka", "etc"))
    rng = np.random.default_rng(secrets.randbits(256) if seed is None else int(seed))
    if scheme == "plain":
        return PlainCipher(shape)
    if scheme == "pixel":
        flip = rng.integers(0, 2, size=(*shape, 3), dtype=np.uint8)
        perm = rng.integers(0, 6, size=shape, dtype=np.uint8) if shuffle else None
        return PixelCipher(flip, perm)
    if scheme == "tanaka":
        return TanakaCipher(rng.permutation(TanakaCipher.UNITS), shape)
    if scheme == "etc":
        grid = (shape[0] // BLOCK, shape[1] // BLOCK)
        return EtcCipher(order=rng.permutation(grid[0] * grid[1]).reshape(grid),
                         rotation=rng.integers(0, 4, grid, dtype=np.uint8),
                         inversion=rng.integers(0, 3, grid, dtype=np.uint8),
                         negpos=rng.integers(0, 2, grid, dtype=np.uint8),
                         colour=rng.integers(0, 6, grid, dtype=np.uint8))
    return ChaoticRc4Cipher(x0=float(rng.uniform(*_X0_RANGE)), r=float(rng.uniform(*_R_RANGE)),
                            rc4_key=rng.bytes(_RC4_KEY_BYTES), shape=shape)


def make_all(shape=(32, 32), seed: int | None = None) -> list[Cipher]:
    """One cipher per entry of ``CONFIGURATIONS`` (figures, benchmarks, comparisons)."""
    return [make(scheme, shape, shuffle=shuffle, seed=seed) for scheme, shuffle in CONFIGURATIONS]


def load(path, scheme: str | None = None, shape=None) -> Cipher:
    """Read a key file; if ``scheme`` / ``shape`` are given, the key must be for them."""
    path = Path(path)
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"key file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a ppdnn key file (damaged JSON: {err})") from None
    if not isinstance(body, dict) or body.get("format") != KEY_FORMAT:
        raise ValueError(f"{path} is not a ppdnn key file (format field missing or wrong)")
    if body.get("version") != KEY_FORMAT_VERSION:
        raise ValueError(f"{path}: key format version {body.get('version')!r} is not "
                         f"supported (expected {KEY_FORMAT_VERSION})")
    if body.get("sha256") != _checksum({k: v for k, v in body.items() if k != "sha256"}):
        raise ValueError(f"{path}: key file is damaged (checksum mismatch)")
    found_scheme = body.get("scheme")
    if found_scheme not in SCHEMES:
        raise ValueError(f"{path}: unknown scheme {found_scheme!r}")
    if scheme is not None and found_scheme != scheme:
        raise ValueError(f"{path} holds a {found_scheme!r} key, not a {scheme!r} key")
    found_shape = tuple(body.get("shape") or ())
    if shape is not None and found_shape != tuple(shape):
        raise ValueError(f"{path} holds a key for {found_shape} images, not {tuple(shape)}")
    try:
        material = {k: _decode(v) for k, v in body["key"].items()}
        cipher = _CLASSES[found_scheme]._from_key_material(material, found_shape)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{path}: key file is damaged ({err})") from None
    if cipher.shape != found_shape:
        raise ValueError(f"{path}: key file is damaged (key material does not fit {found_shape})")
    return cipher


# ------------------------------------------------------------ key spaces (Eqs. 2-5)
def key_space(scheme: str, shape=(32, 32), shuffle: bool = False) -> int:
    """Exact number of distinct keys of ``scheme`` for images of ``shape``, as an integer.

    pixel: 2^(3n) (step 2), times 6^n with step 3 (Eqs. 3-4), n = H*W.
    tanaka: 96! -- the official code derives the reversals from the permutation; the
        paper's Eq. 5 (96! * 2^96) counts them as independent (see ``key_space_rows``).
    etc: B! * 4^B * 3^B * 2^B * 6^B for B blocks (rotation x inversion gives 12 key
        values per block, of which 8 are distinct geometric transforms).
    chaotic_rc4: 2^128 RC4 keys times the float64 values allowed for x0 and r.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {SCHEMES}")
    if shuffle and scheme != "pixel":
        raise ValueError(f"shuffle=True (step 3) only applies to 'pixel', not {scheme!r}")
    shape = _check_shape(shape, block=scheme in ("tanaka", "etc"))
    n = shape[0] * shape[1]
    if scheme == "plain":
        return 1
    if scheme == "pixel":
        return 2 ** (3 * n) * (6 ** n if shuffle else 1)
    if scheme == "tanaka":
        return math.factorial(TanakaCipher.UNITS)
    if scheme == "etc":
        blocks = n // (BLOCK * BLOCK)
        return math.factorial(blocks) * (4 * 3 * 2 * 6) ** blocks
    return 2 ** (8 * _RC4_KEY_BYTES) * _count_floats(*_X0_RANGE) * _count_floats(*_R_RANGE)


def key_space_log10(scheme: str, shape=(32, 32), shuffle: bool = False) -> float:
    """log10 of :func:`key_space` (exact integer, then one rounding to float)."""
    return math.log10(key_space(scheme, shape, shuffle))


def key_space_rows(sizes=((32, 32),)) -> list[dict]:
    """Eqs. (2)-(5) and the baselines, one row per (image size, encryption), for a table."""
    rows = []
    for shape in sizes:
        shape = _check_shape(shape)
        n = shape[0] * shape[1]
        blocks_ok = shape[0] % BLOCK == 0 and shape[1] % BLOCK == 0
        entries = [
            ("step 2 (negative-positive), Eq. 3", "2^(3n)", 2 ** (3 * n)),
            ("step 3 (colour shuffle), Eq. 3", "6^n", 6 ** n),
            ("steps 2+3 (proposed), Eq. 4", "2^(3n) * 6^n", 2 ** (3 * n) * 6 ** n),
            ("Tanaka, Eq. 5 (paper)", "96! * 2^96",
             math.factorial(96) * 2 ** 96 if blocks_ok else None),
            ("Tanaka, official code key", "96!",
             key_space("tanaka", shape) if blocks_ok else None),
            ("EtC (4x4 blocks)", "B! * 4^B * 3^B * 2^B * 6^B",
             key_space("etc", shape) if blocks_ok else None),
            ("chaotic/RC4 (approximation)", "2^128 * #x0 * #r", key_space("chaotic_rc4", shape)),
        ]
        for name, formula, count in entries:
            if count is not None:
                rows.append({"image": f"{shape[0]}x{shape[1]}", "n": n, "encryption": name,
                             "formula": formula, "log10_key_space": round(math.log10(count), 2)})
    return rows


# ------------------------------------------------------------ key-setup primitives
def rc4_keystream(key: bytes, length: int) -> bytes:
    """RC4 keystream (KSA + PRGA). A Python loop, run once per key at key setup."""
    if not 1 <= len(key) <= 256:
        raise ValueError("RC4 keys have 1 to 256 bytes")
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) & 255
        s[i], s[j] = s[j], s[i]
    out = bytearray(length)
    i = j = 0
    for k in range(length):
        i = (i + 1) & 255
        j = (j + s[i]) & 255
        s[i], s[j] = s[j], s[i]
        out[k] = s[(s[i] + s[j]) & 255]
    return bytes(out)


def logistic_sequence(x0: float, r: float, length: int) -> np.ndarray:
    """``length`` values of the logistic map after a transient (sequential, key setup only)."""
    x = x0
    values = np.empty(length)
    for k in range(_LOGISTIC_TRANSIENT + length):
        x = r * x * (1.0 - x)
        if k >= _LOGISTIC_TRANSIENT:
            values[k - _LOGISTIC_TRANSIENT] = x
    return values


@functools.cache
def _etc_block_patterns() -> np.ndarray:
    """(4 rotations, 3 inversions, 6 colours, 48): source position in a 4x4x3 block."""
    local = np.arange(BLOCK * BLOCK * 3).reshape(BLOCK, BLOCK, 3)
    patterns = np.empty((4, 3, 6, local.size), dtype=np.intp)
    for rot in range(4):
        turned = np.rot90(local, k=rot, axes=(0, 1))
        for inv, inverted in enumerate((turned, turned[:, ::-1], turned[::-1])):
            for code in range(6):
                patterns[rot, inv, code] = inverted[..., PERMUTATIONS[code]].ravel()
    patterns.flags.writeable = False
    return patterns


def _block_units(shape, planes: int) -> np.ndarray:
    """(blocks, planes*48): flat unit index (layout (planes, H, W, 3)) of each 4x4 block.

    Blocks in raster order; inside a block plane-major, then row, column, channel.
    """
    h, w = shape
    units = np.arange(planes * h * w * 3).reshape(planes, h // BLOCK, BLOCK, w // BLOCK, BLOCK, 3)
    return units.transpose(1, 3, 0, 2, 4, 5).reshape((h // BLOCK) * (w // BLOCK), -1)


def _count_floats(low: float, high: float) -> int:
    """Number of float64 values in [low, high) for 0 < low < high (bit patterns are ordered)."""
    def bits(v: float) -> int:
        return struct.unpack("<q", struct.pack("<d", v))[0]
    return bits(high) - bits(low)


# ------------------------------------------------------------ validation and files
def _check_shape(shape, block: bool = False) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be (H, W), got {shape!r}") from None
    if h <= 0 or w <= 0 or (h, w) != tuple(shape):
        raise ValueError(f"shape must be two positive ints (H, W), got {shape!r}")
    if block and (h % BLOCK or w % BLOCK):
        raise ValueError(f"block schemes need H and W divisible by {BLOCK}, got {(h, w)}")
    return h, w


def _key_array(value, name: str, ndim: int, high: int | None, dtype=np.uint8) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biu":
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    if array.ndim != ndim or array.size == 0:
        raise ValueError(f"{name} must be a non-empty {ndim}-d array, got shape {array.shape}")
    if array.min() < 0 or (high is not None and array.max() > high):
        raise ValueError(f"{name} values must lie in 0..{high}")
    array = array.astype(dtype)
    array.flags.writeable = False
    return array


def _encode(value):
    if isinstance(value, np.ndarray):
        return {"dtype": str(value.dtype), "shape": list(value.shape),
                "base64": base64.b64encode(np.ascontiguousarray(value).tobytes()).decode()}
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    return value


def _decode(value):
    if isinstance(value, dict) and "base64" in value:
        dtype = np.dtype(value["dtype"])
        if dtype.kind not in "iu":
            raise ValueError(f"unexpected dtype {dtype}")
        raw = base64.b64decode(value["base64"], validate=True)
        return np.frombuffer(raw, dtype=dtype).reshape(value["shape"])
    if isinstance(value, dict) and "hex" in value:
        return bytes.fromhex(value["hex"])
    return value


def _checksum(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


