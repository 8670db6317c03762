"""The ``Cipher`` base class, the registry of schemes and their named configurations.

A scheme is one subclass of :class:`Cipher` that sets ``scheme`` (its name); defining the
class registers it (``__init_subclass__``), so a new scheme is one new module in this
package. The class declares everything the rest of the project needs:

- ``scheme``: the name used by key files, the CLI and ``params.yaml``;
- ``configurations``: its named configurations, {name: keyword options of ``generate``}
  (default: one configuration named after the scheme, no options);
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
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from . import keyfile
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

    ``options`` are the keyword options of the scheme's ``generate``; the names are
    those under ``ciphers:`` in ``params.yaml``.
    """
    name: str
    scheme: str
    options: dict = field(default_factory=dict, hash=False)

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
    # {configuration name: options of generate()}; None: one named after the scheme.
    configurations: ClassVar[dict[str, dict] | None] = None
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
        """(encryption, formula, count) rows for the key-space table: one per configuration."""
        return [(name, cls.key_space_formula, cls.key_space(shape, **options))
                for name, options in cls.named_configurations().items()]

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
    @classmethod
    def named_configurations(cls) -> dict[str, dict]:
        return dict(cls.configurations) if cls.configurations is not None else {cls.scheme: {}}

    @property
    def configuration(self) -> str:
        """The name of the configuration this key belongs to, e.g. ``pixel_shuffle``."""
        for name, options in self.named_configurations().items():
            if options == self.options:
                return name
        raise ValueError(f"{self!r} with options {self.options} matches none of the "
                         f"configurations {self.named_configurations()}")

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
    def fingerprint(self) -> str:
        """A public identifier of this key (16 hex digits): a hash of scheme, shape and key
        material. Stored with every encrypted output so that decrypting with another key,
        or encrypting twice, is caught; it reveals nothing usable about the key."""
        body = {"scheme": self.scheme, "shape": list(self.shape),
                "key": keyfile.encode_material(self.key_material())}
        return hashlib.sha256(b"ppdnn-key-fingerprint\0" + json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

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
def _register(cls: type[Cipher]) -> None:
    name = cls.scheme
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{cls.__name__}.scheme must be an identifier-like name, got {name!r}")
    known = _REGISTRY.get(name)
    # Re-running a module (importlib.reload, a notebook cell) replaces its own class.
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"scheme {name!r} is already registered by {known.__module__}.{known.__qualname__}")
    taken = {c for other in _REGISTRY.values() if other.scheme != name
             for c in other.named_configurations()}
    clash = taken & set(cls.named_configurations())
    if clash:
        raise ValueError(f"configuration name(s) {sorted(clash)} of {cls.__name__} are already used")
    _REGISTRY[name] = cls


def unregister(scheme: str) -> type[Cipher]:
    """Remove ``scheme`` from the registry (tests that define a scheme clean up with it)."""
    try:
        return _REGISTRY.pop(scheme)
    except KeyError:
        raise ValueError(f"scheme {scheme!r} is not registered") from None


def registered_classes() -> list[type[Cipher]]:
    """The registered scheme classes in table order (``table_rank``, then name)."""
    return sorted(_REGISTRY.values(), key=lambda cls: (cls.table_rank, cls.scheme))


def schemes() -> tuple[str, ...]:
    """Names of every registered scheme now, in table order (the CLI's and pipeline's choices)."""
    return tuple(cls.scheme for cls in registered_classes())


def scheme_class(scheme: str) -> type[Cipher]:
    """The registered class of ``scheme``; ValueError naming the choices if there is none."""
    try:
        return _REGISTRY[scheme]
    except (KeyError, TypeError):
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {schemes()}") from None


def configurations() -> tuple[Configuration, ...]:
    """Every named configuration of every registered scheme, in the order of Tables 2-3."""
    return tuple(Configuration(name, cls.scheme, dict(options))
                 for cls in registered_classes() for name, options in cls.named_configurations().items())


def configuration(name: str) -> Configuration:
    """The configuration called ``name`` (e.g. ``pixel_shuffle``)."""
    found = {c.name: c for c in configurations()}
    if name not in found:
        raise ValueError(f"unknown cipher configuration {name!r}; choose one of {tuple(found)}")
    return found[name]


def resolve_options(cls: type[Cipher], shuffle: bool = False, options: dict | None = None) -> dict:
    """The ``generate`` options of a ``(scheme, shuffle=..., **options)`` call, checked
    against the options that the scheme's named configurations use."""
    options = dict(options or {})
    if shuffle:
        options["shuffle"] = True
    known = {k for o in cls.named_configurations().values() for k in o}
    for name in options:
        if name not in known:
            users = [c.scheme for c in registered_classes()
                     if any(name in o for o in c.named_configurations().values())]
            what = "shuffle=True (step 3)" if name == "shuffle" else f"option {name!r}"
            where = ", ".join(repr(u) for u in users) or "no registered scheme"
            raise ValueError(f"{what} only applies to {where}, not {cls.scheme!r}")
    return options
