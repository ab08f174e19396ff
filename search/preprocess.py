"""Preprocessing: raw images -> RGB float32 at the model's size -> (augmented) -> VGG16's inputs.

The order is the same everywhere (search, cache, retrain, test): `prepare` once per image set, then
per view an `augmenter`, then `vgg16_inputs` (VGG16's own `preprocess_input`: RGB->BGR, ImageNet
mean).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from search.data import Dataset, split_for_search

BATCH = 2048  # images resized per call: bounds the temporary memory
# Strength 1.0 of augmentation: rotation (fraction of a full turn), shift and zoom (fractions of
# the image size). Strength s scales all three; s = 0 is no augmentation.
MAX_ROTATION = 15 / 360
MAX_SHIFT = 0.10
MAX_ZOOM = 0.10


@dataclass
class ImageSet:
    """RGB float32 images at the model's size, their labels, and a hash that names them in caches."""

    images: np.ndarray
    labels: np.ndarray
    key: str


def prepare(x: np.ndarray, y: np.ndarray, image_size: int) -> ImageSet:
    images = to_rgb(x, image_size)
    key = hashlib.sha256(images.tobytes()).hexdigest()[:16]
    return ImageSet(images, y, key)


def search_images(data: Dataset, val_fraction: float, subset: int | None,
                  image_size: int) -> tuple[ImageSet, ImageSet]:
    """The search's training and validation images (search.data's stratified split), prepared:
    the trials, their reruns and the benchmarks all train and score on these."""
    split = split_for_search(data, val_fraction, subset)
    return (prepare(split.x_train, split.y_train, image_size),
            prepare(split.x_val, split.y_val, image_size))


def to_rgb(x: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 (N, H, W[, C]) -> float32 (N, S, S, 3) in 0..255: grey is repeated to 3 channels."""
    import keras

    if x.ndim == 3:
        x = x[..., None]
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif x.shape[-1] != 3:
        raise ValueError(f"images need 1 or 3 channels, got {x.shape[-1]}")
    out = np.empty((len(x), image_size, image_size, 3), np.float32)
    for start in range(0, len(x), BATCH):
        batch = x[start:start + BATCH].astype(np.float32)
        if batch.shape[1:3] != (image_size, image_size):
            batch = keras.ops.convert_to_numpy(keras.ops.image.resize(
                batch, (image_size, image_size), data_format="channels_last"))
        out[start:start + BATCH] = batch
    return out


def augmenter(strength: float, flips: bool, seed: int):
    """A Keras pipeline of random rotation, shift and zoom scaled by `strength` (flips if allowed);
    on torch, search.augment_torch's single warp drawn from the same ranges."""
    import keras

    if keras.backend.backend() == "torch":  # Keras's layers warp image by image there
        from search.augment_torch import RandomAffine

        return RandomAffine(strength * MAX_ROTATION, strength * MAX_SHIFT, strength * MAX_ZOOM,
                            flips, seed=seed)
    layers = [
        keras.layers.RandomRotation(strength * MAX_ROTATION, fill_mode="constant", seed=seed),
        keras.layers.RandomTranslation(strength * MAX_SHIFT, strength * MAX_SHIFT,
                                       fill_mode="constant", seed=seed + 1),
        keras.layers.RandomZoom(strength * MAX_ZOOM, fill_mode="constant", seed=seed + 2),
    ]
    if flips:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed + 3))
    return keras.Sequential(layers)


def vgg16_inputs(x: np.ndarray) -> np.ndarray:
    """VGG16's own preprocessing of RGB 0..255 images."""
    from keras.applications.vgg16 import preprocess_input

    return preprocess_input(np.array(x, np.float32, copy=True))
