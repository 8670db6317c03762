"""Batched shift and horizontal flip on uint8 image tensors; augmentation in the client or the cloud.

The shift is torchvision's ``RandomCrop(size, padding=4)`` (zero padding, then a crop
whose top-left corner is uniform in 0..2*padding on each axis), followed by
``RandomHorizontalFlip(p=0.5)``. Whole batches are augmented at once on the tensor's
device: pad once, then one ``gather`` with per-image index arithmetic.

Where augmentation happens is the paper's subject (Fig. 2):
- in the client: augment the plain image, then encrypt it with the data set's key;
- in the cloud: augment the already encrypted image. For a pixel-wise cipher this
  equals encrypting the augmented plain image with a key shifted/flipped the same way
  (except in the zero-padded border, which stays 0 instead of being encrypted); for a
  4x4 block cipher it breaks block alignment unless the shift is a multiple of 4.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

PADDING = 4
SITES = ("client", "cloud", "none")  # where the training batches are augmented


class Offsets(NamedTuple):
    """Per-image crop corner in the padded image and flip flag (int64, int64, bool), shape (N,)."""
    top: torch.Tensor
    left: torch.Tensor
    flip: torch.Tensor

    def to(self, device) -> "Offsets":
        return Offsets(*(t.to(device) for t in self))

    def __getitem__(self, index):  # tuple indexing stays; tensor index selects images
        if isinstance(index, int):
            return tuple.__getitem__(self, index)
        return Offsets(self.top[index], self.left[index], self.flip[index])


def _check_images(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) images, got shape {tuple(x.shape)}")


def draw_offsets(n: int, generator: torch.Generator, padding: int = PADDING,
                 device=None) -> Offsets:
    """Random crop corners in 0..2*padding and flip flags for ``n`` images.

    Drawn on the generator's device (a CPU generator makes them device-independent),
    then moved to ``device``.
    """
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    gdev = generator.device
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gdev)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gdev)
    flip = torch.rand(n, generator=generator, device=gdev) < 0.5
    offsets = Offsets(top, left, flip)
    return offsets.to(device) if device is not None else offsets


def shift_flip(x: torch.Tensor, offsets: Offsets, padding: int = PADDING) -> torch.Tensor:
    """Zero-pad by ``padding``, crop back to (H, W) at ``offsets``, then flip where asked."""
    _check_images(x)
    n, c, h, w = x.shape
    top, left, flip = (t.to(x.device) for t in offsets)
    if top.shape != (n,) or left.shape != (n,) or flip.shape != (n,):
        raise ValueError(f"offsets must each have shape ({n},)")
    padded = F.pad(x, (padding,) * 4)  # zeros, like RandomCrop(padding=p, fill=0)
    wp = w + 2 * padding
    rows = top[:, None] + torch.arange(h, device=x.device)                  # (N, H)
    cols = torch.arange(w, device=x.device).expand(n, w)
    cols = left[:, None] + torch.where(flip[:, None], w - 1 - cols, cols)  # (N, W)
    flat_index = (rows[:, :, None] * wp + cols[:, None, :]).reshape(n, 1, h * w)
    out = padded.reshape(n, c, -1).gather(2, flat_index.expand(n, c, h * w))
    return out.reshape(n, c, h, w)


def random_shift_flip(x: torch.Tensor, generator: torch.Generator,
                      padding: int = PADDING) -> torch.Tensor:
    """``RandomCrop(H, padding)`` + ``RandomHorizontalFlip()`` on a uint8 (N, C, H, W) batch."""
    _check_images(x)
    return shift_flip(x, draw_offsets(len(x), generator, padding, x.device), padding)


def augment_in_client(plain_batch: torch.Tensor, cipher, generator: torch.Generator | None = None,
                      offsets: Offsets | None = None, padding: int = PADDING) -> torch.Tensor:
    """Client side: augment the plain images, then encrypt them with the fixed key."""
    if offsets is None:
        if generator is None:
            raise ValueError("give a generator or offsets")
        offsets = draw_offsets(len(plain_batch), generator, padding, plain_batch.device)
    return cipher.encrypt(shift_flip(plain_batch, offsets, padding))


def augment_in_cloud(encrypted_batch: torch.Tensor, generator: torch.Generator | None = None,
                     offsets: Offsets | None = None, padding: int = PADDING) -> torch.Tensor:
    """Cloud side: augment the encrypted images as they are (no key involved)."""
    if offsets is None:
        if generator is None:
            raise ValueError("give a generator or offsets")
        offsets = draw_offsets(len(encrypted_batch), generator, padding, encrypted_batch.device)
    return shift_flip(encrypted_batch, offsets, padding)


class Augmentation:
    """Where every training batch is augmented (Fig. 2), the one object the training loop uses.

    ``client``: the training set is plain; each batch is shifted/flipped, then encrypted
    with ``cipher`` (the client's key). ``cloud``: the training set is already encrypted
    and each batch is shifted/flipped as it is. ``none``: batches pass unchanged.
    """

    def __init__(self, site: str, cipher=None):
        if site not in SITES:
            raise ValueError(f"unknown augmentation site {site!r}; choose one of {SITES}")
        if site == "client" and cipher is None:
            raise ValueError("augment='client' needs cipher=...: pass the plain training images and the key")
        if site != "client" and cipher is not None:
            raise ValueError(f"augment={site!r} takes the encrypted training images and cipher=None")
        self.site, self.cipher = site, cipher

    # Everything else that depends on the site is answered here, in one place.
    @staticmethod
    def reads_plain(site: str) -> bool:
        """Whether training at ``site`` reads the plain training images (and the key)."""
        return site == "client"

    @classmethod
    def training_images(cls, site: str, plain: dict | None, encrypted: dict) -> tuple:
        """(images, labels, cipher) that training at ``site`` reads: the plain images and the
        key in the client (each batch is encrypted after augmentation), else the encrypted
        images and no key. ``plain`` / ``encrypted``: dicts with train_images/train_labels."""
        if cls.reads_plain(site):
            if plain is None:
                raise ValueError("augmentation in the client needs the plain training images")
            return plain["train_images"], plain["train_labels"], encrypted["cipher"]
        return encrypted["train_images"], encrypted["train_labels"], None

    def as_seen(self, train_images):
        """Training images as the network sees them, encrypted, also when the client
        augments plain ones: the normalisation statistics and the validation split use them."""
        return self.cipher.encrypt(train_images) if self.reads_plain(self.site) else train_images

    @property
    def flip_tta_valid(self) -> bool:
        """Flip test-time augmentation flips the ciphertext: that is the training
        distribution only when the cloud augmented encrypted images (client runs saw
        encrypt(flip(x)) instead)."""
        return not self.reads_plain(self.site)

    def draw(self, n: int, generator: torch.Generator, device=None) -> Offsets | None:
        """This epoch's offsets for ``n`` images (None when nothing is augmented)."""
        return None if self.site == "none" else draw_offsets(n, generator, device=device)

    def __call__(self, batch: torch.Tensor, offsets: Offsets | None) -> torch.Tensor:
        """The batch as the network sees it: augmented where this site augments, encrypted."""
        if self.reads_plain(self.site):
            return augment_in_client(batch, self.cipher, offsets=offsets)
        if self.site == "cloud":
            return augment_in_cloud(batch, offsets=offsets)
        return batch
