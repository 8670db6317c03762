"""The ``Cipher`` base class, the registry of schemes and their named configurations.

A scheme is one subclass of :class:`Cipher` that sets ``scheme`` (its name), in its own
module ``ppdnn/schemes/<scheme>.py``; defining the class registers it (``__init_subclass__``),
and :func:`scheme_class` imports that one module by name, so a new scheme is one new file
and finding a scheme loads no other. Named configurations (``pixel_shuffle`` = ``pixel``
with ``shuffle``) are data, the ``ciphers:`` entries of ``params.yaml``
(:class:`Configuration`). The class declares everything the rest of the project needs:

- ``scheme``: the name used by key files, the CLI and ``params.yaml``;
- ``generate(rng, shape, **options)``: draw a key from a numpy Generator;
- ``key_space(shape, **options)``: the exact number of distinct encryptions, and
  ``key_space_rows(shape)`` for the key-space table;
- ``block_aligned``: True if image sides must be multiples of ``BLOCK``;
- ``build_table()``: the key as a position/XOR :class:`~.engine.Table`;
- ``key_material()`` / ``from_key_material(material, shape)``: the key-file round trip;
- ``options`` and ``label`` of an instance (which configuration it is, how tables name it).
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import math
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from . import auth, keyfile
from .engine import BLOCK, Table, apply_numpy, apply_torch

_REGISTRY: dict[str, type["Cipher"]] = {}


# ------------------------------------------------------------ validation helpers
def check_shape(shape, block: bool = False) -> tuple[int, int]:
    """``shape`` as (H, W) of positive ints; with ``block`` both multiples of ``BLOCK``."""
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be (H, W), got {shape!r}") from None
    if h <= 0 or w <= 0 or (h, w) != tuple(shape):
        raise ValueError(f"shape must be two positive ints (H, W), got {shape!r}")
    if block and (h % BLOCK or w % BLOCK):
        raise ValueError(f"block schemes need H and W divisible by {BLOCK}, got {(h, w)}")
    return h, w


def key_array(value, name: str, ndim: int, high: int | None, dtype=np.uint8) -> np.ndarray:
    """A read-only integer key array of ``ndim`` dimensions with values in 0..``high``."""
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


# ------------------------------------------------------------ named configurations
@dataclass(frozen=True)
class Configuration:
    """A named way to use a scheme, e.g. ``pixel_shuffle`` = scheme ``pixel`` with step 3.

    Configurations are data: the entries under ``ciphers:`` in ``params.yaml``
    (``pixel_shuffle: {scheme: pixel, shuffle: true}``); ``options`` are the keyword
    options of the scheme's ``generate``. The name also derives the key (``keys.derive_seed``).
    """
    name: str
    scheme: str
    options: dict = field(default_factory=dict, hash=False)

    @classmethod
    def from_entry(cls, name: str, entry: dict | None) -> "Configuration":
        """The configuration of a ``params.yaml`` entry: ``{scheme: ..., **options}``;
        an empty entry (or no ``scheme``) means the scheme of the same name, no options."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"a cipher configuration name must be an identifier, got {name!r}")
        entry = {} if entry is None else entry
        if not isinstance(entry, dict):
            raise ValueError(f"cipher configuration {name!r} must be a mapping like "
                             f"{{scheme: pixel, shuffle: true}}, got {entry!r}")
        options = {k: v for k, v in entry.items() if k != "scheme"}
        scheme = entry.get("scheme", name)
        return cls(name, scheme, resolve_options(scheme_class(scheme), options=options))

    @property
    def shuffle(self) -> bool:
        """The ``shuffle`` option (step 3 of the pixel scheme), as in ``params.yaml``."""
        return bool(self.options.get("shuffle", False))

    @property
    def cipher_class(self) -> type["Cipher"]:
        return scheme_class(self.scheme)


# ------------------------------------------------------------ the base class
class Cipher:
    """A key for images of ``shape`` (H, W) and the position/XOR table it defines."""

    scheme: ClassVar[str]
    block_aligned: ClassVar[bool] = False
    # Where the scheme's rows stand in tables (the paper's order); new schemes go last.
    table_rank: ClassVar[int] = 1000
    # How the key-space table writes the count (the default key_space_rows uses it).
    key_space_formula: ClassVar[str] = ""

    def __init_subclass__(cls, register: bool = True, **kwargs):
        """Register every subclass that names its ``scheme`` (``register=False`` opts out)."""
        super().__init_subclass__(**kwargs)
        if register and "scheme" in cls.__dict__:
            _register(cls)

    def __init__(self, shape=(32, 32)):
        self.shape = check_shape(shape, block=self.block_aligned)
        self.provenance: dict | None = None  # how the key was derived, saved with it
        self._torch_cache: dict = {}

    # -- what a scheme provides
    @classmethod
    def generate(cls, rng: np.random.Generator, shape, **options) -> "Cipher":
        """A key drawn from ``rng`` for images of ``shape`` (already checked)."""
        raise NotImplementedError(f"{cls.__name__} does not say how to draw a key")

    @classmethod
    def key_space(cls, shape, **options) -> int:
        """Exact number of distinct encryptions of this scheme for images of ``shape``."""
        raise NotImplementedError(f"{cls.__name__} does not count its key space")

    @classmethod
    def key_space_rows(cls, shape) -> list[tuple[str, str, int]]:
        """(encryption, formula, count) rows for the key-space table (default: one row)."""
        return [(cls.scheme, cls.key_space_formula, cls.key_space(shape))]

    def build_table(self) -> Table:
        """The key as a table ``y = x[index] ^ mask`` (see :mod:`.engine`)."""
        raise NotImplementedError(f"{type(self).__name__} does not build its table")

    def key_material(self) -> dict:
        """The key as {name: array, bytes or number}: what the key file stores."""
        return {}

    @classmethod
    def from_key_material(cls, material: dict, shape) -> "Cipher":
        """Inverse of :meth:`key_material` (the default passes it to the constructor)."""
        return cls(shape=shape, **material)

    @property
    def options(self) -> dict:
        """The ``generate`` options this key was made with (selects its configuration)."""
        return {}

    @property
    def label(self) -> str:
        return self.scheme

    # -- derived from the above
    @property
    def configuration(self) -> str:
        """The configuration this key was made for (its provenance, written into its key
        file by ``keys.make_for_configuration``), else the scheme's name."""
        return (self.provenance or {}).get("configuration") or self.scheme

    @property
    def key_space_log10(self) -> float:
        """log10 of the number of distinct encryptions of this scheme for this image size."""
        return math.log10(type(self).key_space(self.shape, **self.options))

    @property
    def moves_units(self) -> bool:
        """Whether encryption moves values between positions (False: a pure XOR mask)."""
        return self.table().index is not None

    # -- encryption
    @functools.cached_property
    def _tables(self) -> dict:
        forward = self.build_table()
        inverse = forward.inverse()
        return {("encrypt", False): forward,
                ("encrypt", True): forward.channels_first(self.shape),
                ("decrypt", False): inverse,
                ("decrypt", True): inverse.channels_first(self.shape)}

    def table(self, direction: str = "encrypt", channels_first: bool = False) -> Table:
        """The table that encrypts (or decrypts) images laid out (H, W, 3) or (3, H, W)."""
        if direction not in ("encrypt", "decrypt"):
            raise ValueError(f"direction must be 'encrypt' or 'decrypt', got {direction!r}")
        return self._tables[direction, bool(channels_first)]

    def encrypt(self, images):
        """Encrypt uint8 numpy (H, W, 3) / (N, H, W, 3) or torch (N, 3, H, W) images."""
        return self._run("encrypt", images)

    def decrypt(self, images):
        """Invert :meth:`encrypt`; same input types and shapes."""
        return self._run("decrypt", images)

    def _run(self, direction: str, images):
        if isinstance(images, np.ndarray):
            batch = self._check_numpy(images)
            flat = batch.reshape(len(batch), 3 * self.shape[0] * self.shape[1])
            return apply_numpy(self.table(direction), flat).reshape(images.shape)
        if type(images).__module__.startswith("torch"):
            self._check_torch(images)
            flat = images.contiguous().flatten(1)
            table = self.table(direction, channels_first=True)
            if images.device.type == "cpu":  # numpy's chunked gather is the fastest on CPU
                import torch
                out = torch.from_numpy(apply_numpy(table, flat.numpy()))
            else:
                out = apply_torch(table, flat, self._torch_cache)
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
    def material_bytes(self) -> bytes:
        """The canonical bytes of this key that fingerprints and tags derive from."""
        return keyfile.material_bytes(self.scheme, self.shape, self.key_material())

    @functools.cached_property
    def fingerprint(self) -> str:
        """A public identifier of this key, stored with every encrypted output so that
        decrypting with another key, or encrypting twice, is caught (:mod:`.auth`: scrypt,
        about 0.1 s, so scanning seeds against it costs that per guess). Its salt derives
        from the key, so one key always has one fingerprint and outputs are byte-identical."""
        salt = hashlib.sha256(b"ppdnn-fingerprint-salt\0" + self.material_bytes).digest()[:auth.SALT_BYTES]
        return auth.fingerprint(self.material_bytes, salt)

    def fingerprint_matches(self, fp: str) -> bool:
        """Whether ``fp`` (any salt) is a fingerprint of this key."""
        return auth.fingerprint_matches(fp, self.material_bytes)

    def tag(self, payload: bytes) -> str:
        """The authentication tag of ``payload`` (a ciphertext's bytes) under this key."""
        return auth.tag(self.material_bytes, payload, self.fingerprint)

    def tag_matches(self, payload: bytes, claimed: str) -> bool:
        """Whether ``claimed`` is this key's tag of ``payload``: only the key holder can make
        one, so a plaintext or a tampered ciphertext carrying a copied fingerprint fails."""
        return auth.check_tag(self.material_bytes, payload, self.fingerprint, claimed)

    def save(self, path, overwrite: bool = False, provenance: dict | None = None) -> Path:
        """Write the key as JSON, mode 0600. Without ``overwrite`` the file is created
        exclusively (O_EXCL): of two concurrent calls for one path exactly one succeeds,
        so a key can never be replaced silently. With ``overwrite`` it is replaced atomically.

        ``provenance`` (JSON-able dict, covered by the checksum; default: the key's own
        ``provenance``, set by ``make_for_configuration``) records how the key was derived.
        """
        return keyfile.write(path, self.scheme, self.shape, self.key_material(),
                             self.provenance if provenance is None else provenance, overwrite)

    def __repr__(self) -> str:  # never prints key material
        return f"{type(self).__name__}(label={self.label!r}, shape={self.shape})"


# ------------------------------------------------------------ the registry
SCHEMES_PACKAGE = "ppdnn.schemes"   # one module per scheme, named after it


def _register(cls: type[Cipher]) -> None:
    name = cls.scheme
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{cls.__name__}.scheme must be an identifier-like name, got {name!r}")
    known = _REGISTRY.get(name)
    # Re-running a module (importlib.reload, a notebook cell) replaces its own class.
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"scheme {name!r} is already registered by {known.__module__}.{known.__qualname__}")
    _REGISTRY[name] = cls


def unregister(scheme: str) -> type[Cipher]:
    """Remove ``scheme`` from the registry (tests that define a scheme clean up with it)."""
    try:
        return _REGISTRY.pop(scheme)
    except KeyError:
        raise ValueError(f"scheme {scheme!r} is not registered") from None


def scheme_modules() -> list[str]:
    """Names of the modules in the schemes folder (one per scheme), without importing them."""
    package = importlib.import_module(SCHEMES_PACKAGE)
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))


def registered_classes() -> list[type[Cipher]]:
    """Every scheme class in table order (``table_rank``, then name). Enumerating imports
    every module of the schemes folder; finding one scheme (:func:`scheme_class`) does not."""
    for module in scheme_modules():
        scheme_class(module)
    return sorted(_REGISTRY.values(), key=lambda cls: (cls.table_rank, cls.scheme))


def schemes() -> tuple[str, ...]:
    """Names of every scheme, in table order (the CLI's and the enumerating stages' choices)."""
    return tuple(cls.scheme for cls in registered_classes())


def scheme_class(scheme: str) -> type[Cipher]:
    """The class of ``scheme``, importing only its module (``ppdnn/schemes/<scheme>.py``) if it is
    not registered yet; ValueError naming the choices if there is none."""
    if isinstance(scheme, str) and scheme in _REGISTRY:
        return _REGISTRY[scheme]
    if not isinstance(scheme, str) or not scheme.isidentifier():
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {tuple(scheme_modules())}")
    module = f"{SCHEMES_PACKAGE}.{scheme}"
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise ValueError(f"unknown scheme {scheme!r}; choose one of "
                         f"{tuple(sorted(set(scheme_modules()) | set(_REGISTRY)))}") from None
    if scheme not in _REGISTRY:
        raise ValueError(f"{module} defines no Cipher subclass with scheme = {scheme!r}")
    return _REGISTRY[scheme]


def configurations(entries: dict | None = None) -> tuple[Configuration, ...]:
    """The configurations of ``entries`` (``params.yaml``'s ``ciphers:`` mapping, in its
    order); without entries, one default configuration per scheme (its own name, no options)."""
    if entries is None:
        return tuple(Configuration(cls.scheme, cls.scheme, {}) for cls in registered_classes())
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"cipher configurations must be a non-empty mapping name -> entry, got {entries!r}")
    return tuple(Configuration.from_entry(name, entry) for name, entry in entries.items())


def configuration(name, entries: dict | None = None) -> Configuration:
    """The configuration called ``name``: its entry in ``entries`` (``params.yaml``'s
    ``ciphers:``), or without entries the scheme of that name with no options. A
    :class:`Configuration` passes through."""
    if isinstance(name, Configuration):
        return name
    if entries is None:
        try:
            return Configuration.from_entry(name, None)
        except ValueError as exc:
            raise ValueError(f"unknown cipher configuration {name!r} ({exc}); a configuration "
                             "with options needs its params.yaml entry, e.g. {scheme: pixel, shuffle: true}") from None
    if not isinstance(entries, dict) or name not in entries:
        known = tuple(entries) if isinstance(entries, dict) else ()
        raise ValueError(f"unknown cipher configuration {name!r}; choose one of {known}")
    return Configuration.from_entry(name, entries[name])


def generate_options(cls: type[Cipher]) -> tuple[str, ...]:
    """The keyword options a scheme's ``generate`` takes besides ``rng`` and ``shape``."""
    parameters = list(inspect.signature(cls.generate).parameters.values())[2:]
    return tuple(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def resolve_options(cls: type[Cipher], shuffle: bool = False, options: dict | None = None) -> dict:
    """The ``generate`` options of a ``(scheme, shuffle=..., **options)`` call, checked
    against the keyword options that the scheme's ``generate`` takes."""
    options = dict(options or {})
    if shuffle:
        options["shuffle"] = True
    known = generate_options(cls)
    for name in options:
        if name not in known:
            users = [c.scheme for c in registered_classes() if name in generate_options(c)]
            what = "shuffle=True (step 3)" if name == "shuffle" else f"option {name!r}"
            where = ", ".join(repr(u) for u in users) or "no scheme"
            raise ValueError(f"{what} only applies to {where}, not {cls.scheme!r}")
    return options
