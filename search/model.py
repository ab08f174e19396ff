"""VGG16 cut at a block boundary: a frozen prefix (computed once, cached) and a trainable suffix.

With `unfrozen_blocks = k`, blocks 1..5-k are the frozen prefix and blocks 6-k..5 plus the head are
the suffix that a trial trains. Both are built from fresh copies of the pretrained layers, so no
trial ever changes the weights another trial or the cache starts from.
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from search.errors import UserError

N_BLOCKS = 5
WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


RANDOM_WEIGHTS_SEED = 0  # 'none' weights are the same in every process: caches stay valid

# The suffix's compute precision: a property of the machine, not of the study (the variables stay
# float32 either way). On a CPU with AMX's bfloat16 units, oneDNN trained the 2-5-block suffixes
# 1.8-2.3x faster in mixed bfloat16, at the same validation accuracy, and the head and 1 block
# 0.7-1.1x as fast (bench/precision.py, README): 'auto' chooses bfloat16 there, on TensorFlow
# without a GPU, from BFLOAT16_MIN_BLOCKS unfrozen blocks. VGGSEARCH_PRECISION overrides it:
# float32, mixed_bfloat16. The retrain always trains in float32 (search.retrain).
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
BFLOAT16_MIN_BLOCKS = 2


def load_vgg16(weights: str, image_size: int):
    """VGG16 conv base: `weights` is 'imagenet', 'none' (random, fixed seed) or an .h5 file path."""
    import keras

    if image_size < 32:
        raise UserError(f"--image-size must be at least 32 for VGG16, got {image_size}")
    shape = (image_size, image_size, 3)
    if weights == "none":
        keras.utils.set_random_seed(RANDOM_WEIGHTS_SEED)
        return keras.applications.VGG16(include_top=False, weights=None, input_shape=shape)
    if weights != "imagenet" and not Path(weights).is_file():
        raise UserError(f"weights file not found: {weights}")
    try:
        return keras.applications.VGG16(include_top=False, weights=weights, input_shape=shape)
    except Exception as err:  # h5py/Keras raise OSError, ValueError, KeyError... on bad files
        if weights == "imagenet":
            home = os.environ.get("KERAS_HOME", "~/.keras")
            raise UserError(
                f"cannot get the ImageNet weights ({type(err).__name__}); offline, pass "
                f"--weights PATH to {WEIGHTS_FILE} (Keras re-downloads a cached copy under "
                f"{home}/models whose checksum differs)") from err
        raise UserError(f"cannot load VGG16 weights from {weights}: not a valid VGG16 .h5 file "
                        f"({type(err).__name__})") from err


def weights_id(weights: str) -> str:
    """What identifies the weights in cache keys and study settings: the file's hash for a path."""
    if weights in ("imagenet", "none"):
        return weights
    digest = hashlib.sha256()
    with open(weights, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:16]


def block_of(layer) -> int:
    """1..5 for VGG16's conv and pool layers (named 'block3_conv1' etc.), 0 for the input."""
    return int(layer.name[5]) if layer.name.startswith("block") else 0


def activation_shape(image_size: int, frozen_blocks: int) -> tuple[int, int, int]:
    """Shape of one image's activations after `frozen_blocks` blocks (each halves the size)."""
    channels = (3, 64, 128, 256, 512, 512)[frozen_blocks]
    side = image_size >> frozen_blocks
    return (side, side, channels)


@functools.cache  # the CPU does not change while a process runs; trials ask twice each
def _has_amx_bfloat16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:  # Linux; elsewhere: no
            return "amx_bf16" in f.read().split()
    except OSError:
        return False


def suffix_dtype(unfrozen_blocks: int) -> str:
    """Keras's dtype policy for a suffix with `unfrozen_blocks` trainable blocks."""
    precision = os.environ.get("VGGSEARCH_PRECISION", "auto")
    if precision not in PRECISIONS:
        raise UserError(f"VGGSEARCH_PRECISION must be one of {', '.join(PRECISIONS)}, "
                        f"got {precision!r}")
    if precision != "auto":
        return precision
    import keras

    fast = keras.backend.backend() == "tensorflow" and _has_amx_bfloat16()
    if fast:  # a GPU does the training where there is one: its speed was not measured
        import tensorflow as tf

        fast = not tf.config.list_physical_devices("GPU")
    return "mixed_bfloat16" if fast and unfrozen_blocks >= BFLOAT16_MIN_BLOCKS else "float32"


def _copy_blocks(base, first: int, last: int, image_size: int, name: str, dtype="float32"):
    """A new model of blocks first..last of `base`, with copies of its layers and weights,
    computing in `dtype` (a Keras dtype policy)."""
    import keras

    inputs = keras.Input(activation_shape(image_size, first - 1))
    x = inputs
    for layer in base.layers:
        if first <= block_of(layer) <= last:
            copy = layer.__class__.from_config({**layer.get_config(), "dtype": dtype})
            x = copy(x)
            copy.set_weights(layer.get_weights())
    return keras.Model(inputs, x, name=name)


def frozen_prefix(base, frozen_blocks: int, image_size: int):
    """Blocks 1..frozen_blocks, not trainable; None when nothing is frozen."""
    if frozen_blocks == 0:
        return None
    prefix = _copy_blocks(base, 1, frozen_blocks, image_size, f"frozen_blocks_1_{frozen_blocks}")
    prefix.trainable = False
    return prefix


def build_suffix(base, frozen_blocks: int, image_size: int, n_classes: int,
                 head_units: int, dropout: float, dtype="float32"):
    """Trainable blocks frozen_blocks+1..5 and the head, taking the prefix's activations, computing
    in `dtype` (a Keras dtype policy) but for the class probabilities, always float32 (Keras's
    mixed-precision guide: a low-precision softmax is numerically unsafe)."""
    import keras

    blocks = _copy_blocks(base, frozen_blocks + 1, N_BLOCKS, image_size, "trainable_blocks", dtype)
    x = keras.layers.GlobalAveragePooling2D(name="pool", dtype=dtype)(blocks.output)
    x = keras.layers.Dense(head_units, activation="relu", name="head", dtype=dtype)(x)
    x = keras.layers.Dropout(dropout, name="dropout", dtype=dtype)(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="classes",
                                 dtype="float32")(x)
    return keras.Model(blocks.input, outputs, name="suffix")


def assemble(prefix, suffix, image_size: int):
    """The whole classifier, VGG16 inputs -> class probabilities, for evaluation and export."""
    import keras

    inputs = keras.Input((image_size, image_size, 3), name="vgg16_inputs")
    x = inputs if prefix is None else prefix(inputs, training=False)
    return keras.Model(inputs, suffix(x), name="vggsearch_classifier")
