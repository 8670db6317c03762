"""Images and small presentation helpers for the encryption figures (Fig. 1, Fig. 4, the
CIFAR-10 grid). Markdown tables: :mod:`ppdnn.markdown`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .files import atomic_write


def sample_photo(size: int = 256) -> np.ndarray:
    """matplotlib's sample photo ``grace_hopper.jpg``, centre-cropped square, (size, size, 3) uint8.

    It ships with a dependency, so figures and tests run on a fresh machine.
    """
    from matplotlib import cbook

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as photo:
        photo = photo.convert("RGB")
        side = min(photo.size)
        left, top = (photo.width - side) // 2, (photo.height - side) // 2
        square = photo.crop((left, top, left + side, top + side))
        return np.asarray(square.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)


def cifar_test_samples(per_class: int = 1, cache_dir="data/cifar10", archive=None):
    """The first ``per_class`` test images of each CIFAR-10 class as ((N, 32, 32, 3), labels).

    From the data stage's cache, built from ``archive`` first if needed; None when there is
    neither a cache nor an archive (the figure notebook then skips the CIFAR-10 grid).
    """
    from ppdnn import data

    if not (Path(cache_dir) / data.MANIFEST).is_file() and (archive is None or not Path(archive).is_file()):
        return None
    cifar = data.load_or_prepare(cache_dir, source="archive" if archive else "auto", archive=archive)
    images, labels = cifar["test_images"], cifar["test_labels"]
    picks = np.concatenate([np.flatnonzero(labels == k)[:per_class] for k in range(len(data.CLASSES))])
    return images[picks], labels[picks]


def image_row(images, titles, figsize_per_image: float = 2.2):
    """One row of images with titles (Fig. 1 / Fig. 4 layout).

    A matplotlib ``Figure`` without pyplot: no global state, nothing shown by itself in a
    notebook, nothing to close.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(figsize_per_image * len(images), figsize_per_image + 0.4))
    axes = fig.subplots(1, len(images), squeeze=False)
    for ax, image, title in zip(axes[0], images, titles):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


def image_grid(rows, row_titles, col_titles=None, cell: float = 1.1):
    """A grid: one row per entry of ``rows`` ((N, H, W, 3) each), titled on the left
    (a pyplot-free ``Figure``, as :func:`image_row`)."""
    from matplotlib.figure import Figure

    n_rows, n_cols = len(rows), len(rows[0])
    fig = Figure(figsize=(cell * n_cols + 1.6, cell * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, (images, title) in enumerate(zip(rows, row_titles)):
        for c, image in enumerate(images):
            ax = axes[r, c]
            ax.imshow(image, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(title, rotation=0, ha="right", va="center", fontsize=8)
            if r == 0 and col_titles is not None:
                ax.set_title(col_titles[c], fontsize=8)
    fig.tight_layout()
    return fig


def save_figure(fig, path) -> Path:
    """Save ``fig`` as PNG through a temporary file and a rename (no half-written figures)."""
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=150, bbox_inches="tight"))

