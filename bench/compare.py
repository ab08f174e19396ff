"""Naive loop vs vggsearch's engine, on the same data and the same fixed configurations.

(a) naive: the published experiments' way. The whole VGG16 + head is trained with `model.fit` on
    the images every step (frozen blocks included in every forward pass), online augmentation,
    fixed epochs, no pruning, no cache.
(b) engine: vggsearch's `train_suffix`: only the unfrozen blocks + head train, on activations of
    the frozen blocks cached once (the cache's build time is counted).

Both use TensorFlow as configured by `import search` (oneDNN on unless you set
TF_ENABLE_ONEDNN_OPTS yourself) and the same seed per configuration.

    python bench/compare.py --weights PATH --train 2000 --val 500 --epochs 2

Prints per configuration the training images/s, seconds and best validation accuracy of both, the
total wall time, the speed-up, and the peak RSS of the process.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import search  # noqa: E402,F401  (TensorFlow's environment first)
import keras  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from search.cache import FeatureCache  # noqa: E402
from search.data import load_dataset, split_for_search  # noqa: E402
from search.model import N_BLOCKS, assemble, build_suffix, frozen_prefix, load_vgg16, weights_id  # noqa: E402
from search.preprocess import augmenter, prepare  # noqa: E402
from search.train import EpochLog, train_suffix  # noqa: E402

# (unfrozen_blocks, augment_strength): every cut, with and without augmentation.
CONFIGS = [(k, s) for k in range(N_BLOCKS + 1) for s in (0.0, 0.5)]
FIXED = dict(head_units=256, dropout=0.3, batch_size=64)
LEARNING_RATE = {0: 1e-3}  # head only; fine-tuning uses the low rate below
FINE_TUNE_RATE = 5e-5


def params_for(k: int, strength: float) -> dict:
    return dict(FIXED, unfrozen_blocks=k, augment_strength=strength,
                learning_rate=LEARNING_RATE.get(k, FINE_TUNE_RATE))


def naive(base, params, train, val, n_classes, epochs, image_size, flips, seed):
    """The whole network on images every step, with online augmentation."""
    frozen = N_BLOCKS - params["unfrozen_blocks"]
    keras.utils.set_random_seed(seed)
    suffix = build_suffix(base, frozen, image_size, n_classes, params["head_units"],
                          params["dropout"])
    whole = assemble(frozen_prefix(base, frozen, image_size), suffix, image_size)
    inputs = keras.Input((image_size, image_size, 3))
    x = inputs
    if params["augment_strength"]:
        x = augmenter(params["augment_strength"], flips, seed)(x)
    outputs = whole(keras.applications.vgg16.preprocess_input(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(params["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    log = EpochLog(len(train.labels))
    model.fit(train.images, train.labels, batch_size=params["batch_size"], epochs=epochs,
              validation_data=(val.images, val.labels), verbose=0, callbacks=[log])
    return log


def parse_args(description: str, epochs: int) -> argparse.Namespace:
    """The flags the benchmarks here share: data, weights and sizes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--train", type=int, default=2000, help="training images")
    parser.add_argument("--val", type=int, default=500, help="validation images")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--only", type=int, nargs="*", help="unfrozen block counts to run")
    return parser.parse_args()


def load_data(args: argparse.Namespace):
    """The dataset, its stratified training and validation images at the flags' sizes, and the
    VGG16 base."""
    data = load_dataset(args.dataset)
    total = args.train + args.val
    split = split_for_search(data, args.val / total, total)
    train = prepare(split.x_train, split.y_train, args.image_size)
    val = prepare(split.x_val, split.y_val, args.image_size)
    return data, train, val, load_vgg16(args.weights, args.image_size)


def main() -> None:
    args = parse_args(__doc__.split("\n\n")[0], epochs=2)
    data, train, val, base = load_data(args)
    n_classes = len(data.class_names)
    cache_dir = Path(tempfile.mkdtemp(prefix="vggsearch-bench-"))
    cache = FeatureCache(cache_dir, base, weights_id(args.weights), args.image_size,
                         data.flips_keep_label)
    configs = [c for c in CONFIGS if args.only is None or c[0] in args.only]
    rows, totals = [], {"naive": 0.0, "engine": 0.0}
    try:
        for seed, (k, strength) in enumerate(configs):
            params = params_for(k, strength)
            started = time.perf_counter()
            slow = naive(base, params, train, val, n_classes, args.epochs, args.image_size,
                         data.flips_keep_label, seed)
            naive_s = time.perf_counter() - started
            started = time.perf_counter()
            fast = EpochLog(len(train.labels))
            train_suffix(params, cache, train, val, n_classes, args.epochs, seed, [fast])
            engine_s = time.perf_counter() - started
            totals["naive"] += naive_s
            totals["engine"] += engine_s
            rows.append((k, strength, slow, naive_s, fast, engine_s))
            keras.backend.clear_session()
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)

    table = Table(title=f"{args.dataset}: {args.train} training / {args.val} validation images, "
                        f"{args.epochs} epochs, {args.image_size} px, weights {args.weights}")
    for column in ["unfrozen", "aug", "naive img/s", "naive s", "naive best val",
                   "engine img/s", "engine s (with cache)", "engine best val", "speed-up"]:
        table.add_column(column, justify="right")
    for k, strength, slow, naive_s, fast, engine_s in rows:
        table.add_row(str(k), f"{strength:g}", f"{slow.images_per_second:.0f}", f"{naive_s:.1f}",
                      f"{max(e['val_accuracy'] for e in slow.epochs):.4f}",
                      f"{fast.images_per_second:.0f}", f"{engine_s:.1f}",
                      f"{max(e['val_accuracy'] for e in fast.epochs):.4f}",
                      f"{naive_s / engine_s:.1f}x")
    console = Console(width=160)  # a full-width table in logs and pipes too
    console.print(table)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    console.print(f"total: naive {totals['naive']:.0f} s, engine {totals['engine']:.0f} s, "
                  f"speed-up {totals['naive'] / totals['engine']:.1f}x; peak RSS {peak_gib:.2f} GiB")


if __name__ == "__main__":
    main()
