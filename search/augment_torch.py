"""The search's augmentation on Keras's torch backend: one warp for the whole batch.

Keras's own RandomRotation, RandomTranslation and RandomZoom warp each image in its own call on
torch (`affine_transform` maps coordinates image by image in keras/src/backend/torch/image.py):
459 images/s against TensorFlow's 9 483 on a 2-core Zen 4 (bench/backends.py), and on an H200
building an augmented trial's views took most of its 41-48 s. Here the same random rotation,
shift, zoom and flip are drawn per image and applied in one `grid_sample` call per batch, bilinear
with zeros outside, as Keras's layers with fill_mode="constant".
"""
from __future__ import annotations

import math

import keras
import torch
from torch.nn import functional


class RandomAffine(keras.layers.Layer):
    """Per image: a rotation of up to ±`rotation` of a full turn, shifts of up to ±`shift` of the
    width and of the height, a zoom factor in 1 ± `zoom` (above 1: zoomed out, as Keras's
    RandomZoom), and with `flip` a horizontal flip half of the time. Identity when not training."""

    def __init__(self, rotation: float, shift: float, zoom: float, flip: bool, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.rotation, self.shift, self.zoom, self.flip = rotation, shift, zoom, flip
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        n = images.shape[0]

        def uniform(half_width):
            return keras.random.uniform((n,), -half_width, half_width, seed=self.seed_generator)

        angle = uniform(2 * math.pi * self.rotation)
        zoom = 1 + uniform(self.zoom)
        shift_x, shift_y = uniform(self.shift), uniform(self.shift)
        mirror = torch.where(uniform(1.0) < 0, -1.0, 1.0) if self.flip else torch.ones_like(zoom)
        return warp(images, angle, zoom, shift_x, shift_y, mirror)

    def compute_output_shape(self, input_shape):
        return input_shape


def warp(images, angle, zoom, shift_x, shift_y, mirror):
    """NHWC `images` warped, each by its own values: output pixel p reads input pixel
    center + zoom * rotation(angle) * mirror * (p - center) - shift * size (shifts in fractions
    of the size), bilinear, zeros outside: Keras's RandomRotation, RandomTranslation and
    RandomZoom with fill_mode="constant" warp by the same map for the same values."""
    height, width = images.shape[1], images.shape[2]
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    # affine_grid's coordinates run from -1 to 1 across each axis: a rotation of square pixels
    # needs the aspect ratio, a shift of a fraction f of the size is 2f.
    theta = torch.stack([
        torch.stack([cos * mirror, -sin * height / width, -2 * shift_x], dim=1),
        torch.stack([sin * mirror * width / height, cos, -2 * shift_y], dim=1),
    ], dim=1).to(images.dtype)
    channels_first = images.permute(0, 3, 1, 2)
    grid = functional.affine_grid(theta, list(channels_first.shape), align_corners=False)
    warped = functional.grid_sample(channels_first, grid, mode="bilinear", padding_mode="zeros",
                                    align_corners=False)
    return warped.permute(0, 2, 3, 1)
