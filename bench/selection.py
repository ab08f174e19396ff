"""Selection: does a study's validation set rank its trials as more images would?

A study scores trials on few validation images (600 by default: accuracy in steps of 1/600), then
retrains the one it ranks first. This takes a finished study, trains its completed trials again
exactly as the study did (the same split, cache, seed and epochs, up to each trial's best epoch) and
scores each there on the study's validation images (which must reproduce the study's value), on
`--holdout` training images outside the study's subset (never seen by the search), and on the test
set. It prints the trials in the study's order with the three accuracies, the Spearman correlation
of the validation ranking with the holdout's, and which trial each ranks first.

    python bench/selection.py --studies-dir DIR [--study mnist --holdout 10000 --top K --seeds K]

Each trial trains with the seed the study recorded for it; `--seed S`, the search's, is for
studies made before trials recorded theirs (trial n trained with S + n). `--seeds K` also trains
each trial with K-1 other seeds, to the same epoch, as `--confirm` does (search.confirm): how much
of a trial's value is its seed's luck. The study's activation cache is reused, and the holdout's
and test set's activations are added to it.
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
from search.confirm import OTHER_SEEDS, rerun, training_seed  # noqa: E402
from search.data import load_dataset, subset_indices  # noqa: E402
from search.model import N_BLOCKS, load_vgg16  # noqa: E402
from search.preprocess import prepare, search_images  # noqa: E402
from search.study import connect, default_storage, load_study, ranked_trials  # noqa: E402
from search.train import CachedBatches  # noqa: E402


class ScoreAtEnd(keras.callbacks.Callback):
    """When training ends: accuracy on each of `sets`."""

    def __init__(self, sets: dict):
        super().__init__()
        self.sets, self.accuracy = sets, {}

    def on_train_end(self, logs=None):
        self.accuracy = {name: self.model.evaluate(batches, verbose=0, return_dict=True)
                         ["accuracy"] for name, batches in self.sets.items()}


def holdout_images(data, subset: int, n: int):
    """`n` training images, stratified, from outside the search's subset (search.data's split)."""
    _, outside = subset_indices(data, subset)
    if n > len(outside):
        raise SystemExit(f"--holdout {n}: only {len(outside)} training images lie outside the "
                         "study's subset")
    chosen = outside if n == len(outside) else train_test_split(
        outside, train_size=n, stratify=data.y_train[outside], random_state=1)[0]
    return data.x_train[chosen], data.y_train[chosen]


def train_again(trial, cache, data, train, val, holdout, test, seed: int) -> dict:
    """`trial`'s configuration trained as the study trained it, with `seed`, to its best epoch:
    the accuracy there on the validation images, the holdout and the test set."""
    frozen = N_BLOCKS - trial.params["unfrozen_blocks"]
    score = ScoreAtEnd({name: CachedBatches([cache.activations(images, frozen)], images.labels,
                                            256, shuffle=False)
                        for name, images in [("holdout", holdout), ("test", test)]})
    val_accuracy = rerun(trial, cache, train, val, len(data.class_names), seed, [score])
    return {"val": val_accuracy, **score.accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies-dir", type=Path, required=True)
    parser.add_argument("--study", default="mnist")
    parser.add_argument("--seed", type=int,
                        help="the search's --seed, for a study whose trials did not record "
                             "their seed (made before 2026-12-07)")
    parser.add_argument("--holdout", type=int, default=10_000)
    parser.add_argument("--top", type=int, help="only the study's first K completed trials")
    parser.add_argument("--seeds", type=int, default=1,
                        help="also train each trial with SEEDS-1 other seeds: how much of its "
                             "value is its seed's luck")
    parser.add_argument("--cache-dir", type=Path, help="default: the study's, STUDIES_DIR/cache")
    args = parser.parse_args()

    study, settings = load_study(connect(default_storage(args.studies_dir)), args.study)
    if settings.subset is None:
        parser.error("the study searched all training images: none are left to hold out")
    trials = ranked_trials(study)[:args.top]
    data = load_dataset(settings.dataset)
    train, val = search_images(data, settings.val_fraction, settings.subset, settings.image_size)
    holdout = prepare(*holdout_images(data, settings.subset, args.holdout), settings.image_size)
    test = prepare(*data.test_set(), settings.image_size)
    cache = FeatureCache(args.cache_dir or args.studies_dir / "cache",
                         load_vgg16(settings.weights, settings.image_size), settings.weights_id,
                         settings.image_size, data.flips_keep_label)

    rows = []
    for trial in trials:
        started = time.perf_counter()
        seed = training_seed(trial) if args.seed is None else args.seed + trial.number
        runs = [train_again(trial, cache, data, train, val, holdout, test, seed + OTHER_SEEDS * k)
                for k in range(args.seeds)]
        rows.append({"trial": trial, **runs[0], "seconds": time.perf_counter() - started,
                     "other_seeds": runs[1:]})
        print(f"trial {trial.number}: study {trial.value:.4f}, again {runs[0]['val']:.4f}, "
              f"holdout {runs[0]['holdout']:.4f}, test {runs[0]['test']:.4f}"
              + "".join(f"; another seed: val {r['val']:.4f}, holdout {r['holdout']:.4f}"
                        for r in runs[1:]), flush=True)

    table = Table(title=f"study {args.study} ({args.studies_dir}): its completed trials, trained "
                        f"again to their best epoch on {len(train.labels)} images; validation "
                        f"{len(val.labels)}, holdout {len(holdout.labels)}, test "
                        f"{len(test.labels)} images")
    others = ([f"other seeds' {name} (mean)" for name in ("val", "holdout")]
              if args.seeds > 1 else [])
    for column in ["study rank", "trial", "blocks", "lr", "batch", "aug", "head", "dropout",
                   "epoch", "study val", "val again", "holdout", "test", *others, "s"]:
        table.add_column(column, justify="right")
    for rank, row in enumerate(rows, 1):
        t, p = row["trial"], row["trial"].params
        table.add_row(str(rank), str(t.number), str(p["unfrozen_blocks"]),
                      f"{p['learning_rate']:.2e}", str(p["batch_size"]),
                      f"{p['augment_strength']:g}", str(p["head_units"]), f"{p['dropout']:.2f}",
                      str(t.user_attrs["best_epoch"]), f"{t.value:.4f}", f"{row['val']:.4f}",
                      f"{row['holdout']:.4f}", f"{row['test']:.4f}",
                      *[f"{np.mean([r[name] for r in row['other_seeds']]):.4f}"
                        for name in ("val", "holdout") if others], f"{row['seconds']:.0f}")
    console = Console(width=180)
    console.print(table)
    reproduced = sum(abs(r["val"] - r["trial"].value) < 1e-6 for r in rows)
    console.print(f"validation reproduced for {reproduced} of {len(rows)} trials")
    if len(rows) > 1:
        study_values = [r["trial"].value for r in rows]
        console.print(
            f"Spearman, study validation vs holdout: "
            f"{spearmanr(study_values, holdout_of(rows))[0]:.2f}; "
            f"holdout vs test: {spearmanr(holdout_of(rows), [r['test'] for r in rows])[0]:.2f}. "
            f"The study's first, #{rows[0]['trial'].number}: holdout {rows[0]['holdout']:.4f}; "
            f"the holdout's first: {first(rows, holdout_of(rows))}")
        if args.seeds > 1:
            other = [float(np.mean([o["holdout"] for o in r["other_seeds"]])) for r in rows]
            console.print(
                f"With the other seeds (mean holdout): Spearman with the study's validation "
                f"{spearmanr(study_values, other)[0]:.2f}, with this seed's holdout "
                f"{spearmanr(holdout_of(rows), other)[0]:.2f}; first: {first(rows, other)}")


def holdout_of(rows: list) -> list:
    return [r["holdout"] for r in rows]


def first(rows: list, scores: list) -> str:
    best = int(np.argmax(scores))
    return f"#{rows[best]['trial'].number} ({scores[best]:.4f}, the study's rank {best + 1})"


if __name__ == "__main__":
    main()
