"""Selection: does a study's validation set rank its trials as more images would?

A study scores trials on few validation images (600 by default: accuracy in steps of 1/600), then
retrains the one it ranks first. This takes a finished study, trains its completed trials again
exactly as the study did (the same split, cache, seed and epochs, up to each trial's best epoch) and
scores each there on the study's validation images (which must reproduce the study's value), on
`--holdout` training images outside the study's subset (never seen by the search), and on the test
set. It prints the trials in the study's order with the three accuracies, the Spearman correlation
of the validation ranking with the holdout's, and which trial each ranks first.

    python bench/selection.py --studies-dir DIR --seed S [--study mnist --holdout 10000 --top K]

`--seed` is the search's (`search --seed`, `bench/end_to_end.py --seed`; trial n trained with
seed + n). The study's activation cache is reused, and the holdout's and test set's activations
are added to it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import search  # noqa: E402,F401  (TensorFlow's environment first)
import keras  # noqa: E402
import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from search.cache import FeatureCache  # noqa: E402
from search.data import load_dataset, split_for_search, training_images  # noqa: E402
from search.memory import clear_session  # noqa: E402
from search.model import N_BLOCKS, load_vgg16  # noqa: E402
from search.preprocess import prepare  # noqa: E402
from search.study import connect, default_storage, load_study, ranked_trials  # noqa: E402
from search.train import CachedBatches, EpochLog, train_suffix  # noqa: E402


class ScoreAt(keras.callbacks.Callback):
    """At the end of epoch `epoch` (from 1): accuracy on each of `sets`, then stop training."""

    def __init__(self, epoch: int, sets: dict):
        super().__init__()
        self.epoch, self.sets, self.accuracy = epoch, sets, {}

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            self.accuracy = {name: self.model.evaluate(batches, verbose=0, return_dict=True)
                             ["accuracy"] for name, batches in self.sets.items()}
            self.model.stop_training = True


def holdout_images(data, subset: int, n: int):
    """`n` training images, stratified, from outside the search's subset (search.data's split)."""
    inside, outside = train_test_split(np.arange(len(data.y_train)), train_size=subset,
                                       stratify=data.y_train, random_state=0)
    assert np.array_equal(data.x_train[inside], training_images(data, subset)[0])
    if n > len(outside):
        raise SystemExit(f"--holdout {n}: only {len(outside)} training images lie outside the "
                         "study's subset")
    chosen = outside if n == len(outside) else train_test_split(
        outside, train_size=n, stratify=data.y_train[outside], random_state=1)[0]
    return data.x_train[chosen], data.y_train[chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies-dir", type=Path, required=True)
    parser.add_argument("--study", default="mnist")
    parser.add_argument("--seed", type=int, required=True, help="the search's --seed")
    parser.add_argument("--holdout", type=int, default=10_000)
    parser.add_argument("--top", type=int, help="only the study's first K completed trials")
    parser.add_argument("--cache-dir", type=Path, help="default: the study's, STUDIES_DIR/cache")
    args = parser.parse_args()

    study, settings = load_study(connect(default_storage(args.studies_dir)), args.study)
    if settings.subset is None:
        parser.error("the study searched all training images: none are left to hold out")
    trials = ranked_trials(study)[:args.top]
    data = load_dataset(settings.dataset)
    split = split_for_search(data, settings.val_fraction, settings.subset)
    train = prepare(split.x_train, split.y_train, settings.image_size)
    val = prepare(split.x_val, split.y_val, settings.image_size)
    holdout = prepare(*holdout_images(data, settings.subset, args.holdout), settings.image_size)
    test = prepare(*data.test_set(), settings.image_size)
    cache = FeatureCache(args.cache_dir or args.studies_dir / "cache",
                         load_vgg16(settings.weights, settings.image_size), settings.weights_id,
                         settings.image_size, data.flips_keep_label)

    rows = []
    for trial in trials:
        started = time.perf_counter()
        frozen = N_BLOCKS - trial.params["unfrozen_blocks"]
        sets = {name: CachedBatches([cache.activations(images, frozen)], images.labels, 256,
                                    shuffle=False) for name, images in [("holdout", holdout),
                                                                        ("test", test)]}
        log, score = EpochLog(len(train.labels)), ScoreAt(trial.user_attrs["best_epoch"], sets)
        train_suffix(trial.params, cache, train, val, len(data.class_names), settings.epochs,
                     args.seed + trial.number, [log, score])
        rows.append({"trial": trial, "val": log.epochs[-1]["val_accuracy"], **score.accuracy,
                     "seconds": time.perf_counter() - started})
        print(f"trial {trial.number}: study {trial.value:.4f}, again {rows[-1]['val']:.4f}, "
              f"holdout {score.accuracy['holdout']:.4f}, test {score.accuracy['test']:.4f}",
              flush=True)
        clear_session()

    table = Table(title=f"study {args.study} ({args.studies_dir}): its completed trials, trained "
                        f"again to their best epoch on {len(train.labels)} images; validation "
                        f"{len(val.labels)}, holdout {len(holdout.labels)}, test "
                        f"{len(test.labels)} images")
    for column in ["study rank", "trial", "blocks", "lr", "batch", "aug", "head", "dropout",
                   "epoch", "study val", "val again", "holdout", "test", "s"]:
        table.add_column(column, justify="right")
    for rank, row in enumerate(rows, 1):
        t, p = row["trial"], row["trial"].params
        table.add_row(str(rank), str(t.number), str(p["unfrozen_blocks"]),
                      f"{p['learning_rate']:.2e}", str(p["batch_size"]),
                      f"{p['augment_strength']:g}", str(p["head_units"]), f"{p['dropout']:.2f}",
                      str(t.user_attrs["best_epoch"]), f"{t.value:.4f}", f"{row['val']:.4f}",
                      f"{row['holdout']:.4f}", f"{row['test']:.4f}", f"{row['seconds']:.0f}")
    console = Console(width=180)
    console.print(table)
    reproduced = sum(abs(r["val"] - r["trial"].value) < 1e-6 for r in rows)
    console.print(f"validation reproduced for {reproduced} of {len(rows)} trials")
    if len(rows) > 1:
        by_holdout = max(rows, key=lambda r: r["holdout"])
        console.print(
            f"Spearman, study validation vs holdout: "
            f"{spearmanr([r['trial'].value for r in rows], [r['holdout'] for r in rows])[0]:.2f}; "
            f"holdout vs test: {spearmanr([r['holdout'] for r in rows], [r['test'] for r in rows])[0]:.2f}. "
            f"The study's first, #{rows[0]['trial'].number}: holdout {rows[0]['holdout']:.4f}; "
            f"the holdout's first, #{by_holdout['trial'].number}: {by_holdout['holdout']:.4f}")


if __name__ == "__main__":
    main()
