"""The retrain budget: accuracy of one configuration trained on all training images, epoch by epoch.

The search ranks configurations on a subset; the final model is retrained on more. This trains one
configuration (the flags; by default 2 unfrozen blocks, the kind the searches here found best) on
the whole training set less a stratified validation share, through vggsearch's engine (activation
cache, `train_suffix`), and after every epoch prints validation and test accuracy, seconds and the
running total, so the epochs worth paying for can be read off (by validation; test is shown to
see how far the validation curve can be trusted). Also the peak RSS of a full-MNIST run.

    python bench/retrain_budget.py --weights PATH [--epochs 4 --unfrozen 2 --learning-rate 9e-5 --anneal]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compare import temporary_cache  # noqa: E402  (bench/compare.py)

import search  # noqa: E402,F401  (TensorFlow's environment first)
import keras  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from search.data import load_dataset  # noqa: E402
from search.model import N_BLOCKS, load_vgg16  # noqa: E402
from search.preprocess import prepare, search_images  # noqa: E402
from search.train import CachedBatches, EpochLog, train_suffix  # noqa: E402


class TestAccuracy(keras.callbacks.Callback):
    """Test accuracy after every epoch, on the test set's cached activations."""

    def __init__(self, batches: CachedBatches):
        super().__init__()
        self.batches, self.accuracy = batches, []

    def on_epoch_end(self, epoch, logs=None):
        scores = self.model.evaluate(self.batches, verbose=0, return_dict=True)
        self.accuracy.append(scores["accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--subset", type=int, help="training images (default: all)")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--unfrozen", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=9e-5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--augment", type=float, default=0.0)
    parser.add_argument("--head-units", type=int, default=512)
    parser.add_argument("--dropout", type=float, default=0.15)
    parser.add_argument("--anneal", action="store_true",
                        help="cosine-decay the learning rate to zero over the epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    params = dict(unfrozen_blocks=args.unfrozen, learning_rate=args.learning_rate,
                  batch_size=args.batch_size, augment_strength=args.augment,
                  head_units=args.head_units, dropout=args.dropout)

    started = time.perf_counter()
    data = load_dataset(args.dataset)
    train, val = search_images(data, args.val_fraction, args.subset, args.image_size)
    test = prepare(*data.test_set(), args.image_size)
    base = load_vgg16(args.weights, args.image_size)
    with temporary_cache(args, data, base) as cache:
        frozen = N_BLOCKS - args.unfrozen
        tested = TestAccuracy(CachedBatches([cache.activations(test, frozen)], test.labels, 256,
                                            shuffle=False))
        log = EpochLog(len(train.labels))
        train_suffix(params, cache, train, val, len(data.class_names), args.epochs, args.seed,
                     [log, tested], args.anneal)
    total = time.perf_counter() - started

    table = Table(title=f"{args.dataset}: {len(train.labels)} training / {len(val.labels)} "
                        f"validation / {len(test.labels)} test images, {params}, "
                        f"{'annealed' if args.anneal else 'constant'} learning rate, "
                        f"seed {args.seed}")
    for column in ["epoch", "train loss", "val accuracy", "test accuracy", "train s", "img/s",
                   "training min so far"]:
        table.add_column(column, justify="right")
    so_far = 0.0
    for epoch, test_accuracy in zip(log.epochs, tested.accuracy):
        so_far += epoch["seconds"]
        table.add_row(str(epoch["epoch"]), f"{epoch['loss']:.4f}", f"{epoch['val_accuracy']:.4f}",
                      f"{test_accuracy:.4f}", f"{epoch['seconds']:.0f}",
                      f"{epoch['images_per_second']:.0f}", f"{so_far / 60:.1f}")
    console = Console(width=160)
    console.print(table)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    console.print(f"total {total / 60:.1f} min (data, cache, training, evaluation); "
                  f"peak RSS {peak_gib:.2f} GiB")


if __name__ == "__main__":
    main()
