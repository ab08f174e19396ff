"""Frozen-prefix cache: activations at the frozen/trainable boundary, computed once, kept on disk.

A trial with k unfrozen blocks trains on the activations after block 5-k. Those depend only on the
images, the weights, the cut and (for augmented views) the augmentation strength and view number,
so they are computed once per such key, written to an .npy file (write, then rename: a crash never
leaves a file that a later run trusts) and memory-mapped by every trial and study that needs them.

Augmentation with a cache: instead of new random images each step (which would put the whole
frozen prefix back into every step), each augmentation strength has a bank of `views` random
augmented copies of the training images, each computed once; epoch e trains on view e % views.
"""
from __future__ import annotations

import errno
import math
import os
import shutil
from pathlib import Path

import numpy as np
from filelock import FileLock

from search import interrupt
from search.errors import UserError
from search.model import activation_shape, frozen_prefix
from search.preprocess import ImageSet, augmenter, vgg16_inputs
from search.progress import task

BATCH = 256  # images per forward pass of the prefix
AUGMENTED_VIEWS = 4  # views per augmentation strength; epoch e uses view e % AUGMENTED_VIEWS
CACHE_DTYPE = "float32"  # or "float16": half the disk and page cache (bench/cache_dtype.py)


class FeatureCache:
    """Activations of image sets after the first `frozen_blocks` VGG16 blocks."""

    def __init__(self, root, base, weights_id: str, image_size: int, flips: bool, seed: int = 0,
                 views: int = AUGMENTED_VIEWS, progress=None, dtype: str = CACHE_DTYPE):
        self.root = Path(root)
        self.dtype = np.dtype(dtype)
        self.base = base
        self.weights_id = weights_id
        self.image_size = image_size
        self.flips = flips
        self.seed = seed
        self.views = views
        self.progress = progress
        self._prefixes = {}

    def path(self, images: ImageSet, frozen_blocks: int, strength: float, view: int) -> Path:
        weights = self.weights_id.replace(":", "-")
        aug = f"aug{strength:g}-flips{int(self.flips)}-seed{self.seed}-view{view}" if strength else "noaug"
        return (self.root / f"{images.key}-{self.image_size}px" / weights
                / f"frozen{frozen_blocks}-{aug}-{self.dtype.name}.npy")

    def activations(self, images: ImageSet, frozen_blocks: int, strength: float = 0.0,
                    view: int = 0) -> np.ndarray:
        """Memory-mapped activations of `images` (view `view` at `strength`), computed if missing
        or not intact."""
        view = view % self.views if strength else 0
        path = self.path(images, frozen_blocks, strength, view)
        shape = (len(images.images), *activation_shape(self.image_size, frozen_blocks))
        if not _intact(path, shape, self.dtype):
            path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(f"{path}.lock"):  # workers starting together: one computes, the rest wait
                if not _intact(path, shape, self.dtype):
                    self._compute(images, frozen_blocks, strength, view, path, shape)
        return np.load(path, mmap_mode="r")

    def training_views(self, images: ImageSet, frozen_blocks: int, strength: float,
                       epochs: int | None = None) -> list:
        """The arrays a training run of `epochs` epochs cycles through (epoch e reads view
        e % len), computing only those it reads: one unless augmenting, and at most `epochs` (a
        2-epoch retrain on all of MNIST needs 2 of the 4 views, 3.9 GB each after one block)."""
        n = min(self.views, epochs or self.views) if strength else 1
        return [self.activations(images, frozen_blocks, strength, v) for v in range(n)]

    def _prefix(self, frozen_blocks: int):
        if frozen_blocks not in self._prefixes:
            self._prefixes[frozen_blocks] = frozen_prefix(self.base, frozen_blocks, self.image_size)
        return self._prefixes[frozen_blocks]

    def _compute(self, images: ImageSet, frozen_blocks: int, strength: float, view: int,
                 path: Path, shape: tuple) -> None:
        import keras

        prefix = self._prefix(frozen_blocks)
        augment = augmenter(strength, self.flips, seed=self.seed * 1000 + view) if strength else None
        n = len(images.images)
        # Checked first: a memory-mapped write to a full disk kills the process (SIGBUS), no error.
        needed, free = self.dtype.itemsize * math.prod(shape), shutil.disk_usage(path.parent).free
        if needed > free:
            raise _disk_full(path, needed, free)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        label = f"caching {n} images after {frozen_blocks} frozen blocks"
        if strength:
            label += f", augmentation {strength:g} view {view + 1}/{self.views}"
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=self.dtype, shape=shape)
            with task(self.progress, label, n) as advance:
                for start in range(0, n, BATCH):
                    x = images.images[start:start + BATCH]
                    if augment is not None:
                        x = keras.ops.convert_to_numpy(augment(x, training=True))
                    x = vgg16_inputs(x)
                    if prefix is not None:  # on torch + CUDA a GPU tensor, which numpy cannot read
                        x = keras.ops.convert_to_numpy(prefix(x, training=False))
                    out[start:start + BATCH] = x
                    advance(len(x))
                    interrupt.check()
            out.flush()
            del out
            with open(tmp, "rb+") as written:  # on disk before the rename makes it trusted
                os.fsync(written.fileno())
            os.replace(tmp, path)
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
            raise _disk_full(path, needed, shutil.disk_usage(path.parent).free) from None
        finally:
            tmp.unlink(missing_ok=True)


def _intact(path: Path, shape: tuple, dtype: np.dtype) -> bool:
    """A cache file a run can trust: a whole .npy of the expected shape and type. One cut short (a
    crash of the file system, a copy that stopped) fails to map. Content checksums would mean
    reading gigabytes at every start: not done."""
    try:
        array = np.load(path, mmap_mode="r")
        return array.shape == shape and array.dtype == dtype
    except (OSError, ValueError):
        return False


def _disk_full(path: Path, needed: int, free: int) -> UserError:
    return UserError(f"no room for the activation cache file {path} ({needed / 1e6:.0f} MB, "
                     f"{free / 1e6:.0f} MB free): free some space or give --cache-dir on another "
                     "disk, then run the same command to resume")
