"""Training a suffix (trainable blocks + head) on cached activations, the same for trials and retrain."""
from __future__ import annotations

import math
import time

import keras
import numpy as np

from search import interrupt
from search.cache import FeatureCache
from search.memory import release_pages
from search.model import N_BLOCKS, build_suffix, suffix_dtype
from search.preprocess import ImageSet


# Adam's first steps follow the gradients of a random head and move every weight by about the rate:
# at full rate they can wreck the pretrained blocks for good (bench/learning_rates.py: 3e-4 stalled
# or diverged at every block count without a warm-up, learned with one). So the rate rises
# linearly from 0 over the first WARMUP_IMAGES training images (at most one epoch).
WARMUP_IMAGES = 2048


def n_batches(n_images: int, batch_size: int, epochs: int = 1) -> int:
    """Optimizer steps of `epochs` passes over `n_images` (each pass ends with a short batch)."""
    return epochs * math.ceil(n_images / batch_size)


class CachedBatches(keras.utils.PyDataset):
    """Batches of cached activations for `epochs` epochs in one sequence, to be fit with
    steps_per_epoch=batches_per_epoch: batch j belongs to epoch first_epoch + j // batches_per_epoch,
    which reads view epoch % len(views) in its own shuffled order (the epoch-th permutation drawn
    from `seed`; fit with shuffle=False, or Keras's own shuffle of the batch indices would mix
    the epochs). Batches follow from their index alone: Keras creates the next epoch's iterator,
    and its prefetching starts, before it calls on_epoch_end (and it calls that once before the
    first epoch too), so a batch that read state advanced there depended on thread timing."""

    def __init__(self, views: list, labels: np.ndarray, batch_size: int, shuffle: bool,
                 seed: int = 0, epochs: int = 1, first_epoch: int = 0):
        super().__init__()
        self.views, self.labels, self.batch_size, self.shuffle = views, labels, batch_size, shuffle
        self.epochs, self.first_epoch = epochs, first_epoch
        self.batches_per_epoch = n_batches(len(labels), batch_size)
        self.rng = np.random.default_rng(seed)
        self.orders = []  # epoch -> its order, drawn in sequence
        self.last_view = None

    def order(self, epoch: int) -> np.ndarray:
        while len(self.orders) <= epoch:
            n = len(self.labels)
            self.orders.append(self.rng.permutation(n) if self.shuffle else np.arange(n))
        return self.orders[epoch]

    def __len__(self) -> int:
        return self.epochs * self.batches_per_epoch

    def __getitem__(self, j: int):
        epoch, i = divmod(j, self.batches_per_epoch)
        epoch += self.first_epoch
        view = self.views[epoch % len(self.views)]
        if self.last_view is not None and view is not self.last_view:
            release_pages(self.last_view)  # the epochs have moved on to another view
        self.last_view = view
        # Sorted indices read a memory-mapped file front to back.
        index = np.sort(self.order(epoch)[i * self.batch_size:(i + 1) * self.batch_size])
        return view[index].astype(np.float32, copy=False), self.labels[index]  # float16 cache too


class EpochLog(keras.callbacks.Callback):
    """Per-epoch metrics and training speed; advances a progress task batch by batch."""

    def __init__(self, n_images: int, advance=None):
        super().__init__()
        self.n_images, self.advance = n_images, advance
        self.epochs: list[dict] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        self.learning_rate = float(self.model.optimizer.learning_rate)  # at the epoch's first step
        self.train_seconds = None
        if self.advance:
            self.advance(0, f"epoch {epoch + 1}/{self.params['epochs']}")

    def on_test_begin(self, logs=None):  # validation starts: the training part of the epoch ended
        self.train_seconds = time.perf_counter() - self.started

    def on_train_batch_end(self, batch, logs=None):
        interrupt.check()
        if self.advance:
            self.advance()

    def on_epoch_end(self, epoch, logs=None):
        seconds = self.train_seconds or time.perf_counter() - self.started
        self.epochs.append({**{k: float(v) for k, v in (logs or {}).items()}, "epoch": epoch + 1,
                            "learning_rate": self.learning_rate, "seconds": seconds,
                            "images_per_second": self.n_images / seconds})
        if not all(math.isfinite(v) for v in self.epochs[-1].values()):
            self.model.stop_training = True  # diverged: further epochs cannot recover

    @property
    def images_per_second(self) -> float:
        return float(np.mean([e["images_per_second"] for e in self.epochs])) if self.epochs else 0.0


def train_suffix(params: dict, cache: FeatureCache, train: ImageSet, val: ImageSet | None,
                 n_classes: int, epochs: int, seed: int, callbacks=(), anneal: bool = False,
                 warmup_images: int = WARMUP_IMAGES, dtype: str | None = None):
    """Build the suffix for `params` and fit it on cached activations; returns the trained suffix.
    Pass an `EpochLog` first in `callbacks` to see the epochs even of a run a callback stops.
    `anneal` lowers the learning rate along a cosine to zero over the `epochs` (a final model's
    training; trials keep it constant after the warm-up, so that their epochs compare at any
    count). `dtype` is the suffix's Keras dtype policy, by default the machine's choice
    (search.model.suffix_dtype)."""
    steps = n_batches(len(train.labels), params["batch_size"], epochs) if anneal else None
    suffix = compiled_suffix(params, cache, train, val, n_classes, seed, steps, warmup_images,
                             dtype, epochs)
    fit_suffix(suffix, params, cache, train, val, epochs, seed, callbacks)
    return suffix


def compiled_suffix(params: dict, cache: FeatureCache, train: ImageSet, val: ImageSet | None,
                    n_classes: int, seed: int, decay_steps: int | None = None,
                    warmup_images: int = WARMUP_IMAGES, dtype: str | None = None,
                    epochs: int | None = None):
    """The untrained suffix for `params`, compiled with Adam at the configuration's rate, reached
    after a linear warm-up over `warmup_images` (at most one epoch) and then held, or decayed to
    zero along a cosine by step `decay_steps` if given. The activations its `epochs` will train on
    (None: an unknown number, so every view) are cached first: building them (or not, when they
    exist) must not shift the random numbers of its weights."""
    frozen = N_BLOCKS - params["unfrozen_blocks"]
    cache.training_views(train, frozen, params["augment_strength"], epochs)
    if val is not None:
        cache.activations(val, frozen)
    keras.utils.set_random_seed(seed)
    suffix = build_suffix(cache.base, frozen, cache.image_size, n_classes, params["head_units"],
                          params["dropout"], dtype or suffix_dtype(params["unfrozen_blocks"]))
    rate = params["learning_rate"]
    warmup = n_batches(min(warmup_images, len(train.labels)), params["batch_size"])
    if decay_steps or warmup:
        rate = keras.optimizers.schedules.CosineDecay(
            0.0, max(1, (decay_steps or 0) - warmup), alpha=0.0 if decay_steps else 1.0,
            warmup_target=rate, warmup_steps=warmup)  # alpha 1: no decay after the warm-up
    suffix.compile(optimizer=keras.optimizers.Adam(rate),
                   loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return suffix


def fit_suffix(suffix, params: dict, cache: FeatureCache, train: ImageSet, val: ImageSet | None,
               epochs: int, seed: int, callbacks=(), initial_epoch: int = 0):
    """Fit a compiled suffix on the cached activations of `train` (the configuration's
    augmentation views), validating on `val`; returns Keras's History."""
    frozen = N_BLOCKS - params["unfrozen_blocks"]
    train_views = cache.training_views(train, frozen, params["augment_strength"], epochs)
    val_data = None
    if val is not None:
        val_data = CachedBatches([cache.activations(val, frozen)], val.labels, 256, shuffle=False)
    batches = CachedBatches(train_views, train.labels, params["batch_size"], True, seed,
                            epochs - initial_epoch, initial_epoch)
    return suffix.fit(batches, steps_per_epoch=batches.batches_per_epoch, shuffle=False,
                      validation_data=val_data, epochs=epochs, initial_epoch=initial_epoch,
                      verbose=0, callbacks=list(callbacks))
