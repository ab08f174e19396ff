"""Naive loop vs vggsearch's engine, on the same data and the same fixed configurations.

(a) naive: the published experiments' way. The whole VGG16 + head is trained with `model.fit` on
    the images every step (frozen blocks included in every forward pass), online augmentation,
    fixed epochs, no pruning, no cache.
(b) study: vggsearch's engine with its defaults: the same configurations enqueued as the trials
    of one Optuna study with the default (Hyperband) pruner over the same epochs; each trial
    trains only the unfrozen blocks + head on activations of the frozen blocks, cached once and
    shared by the trials (the cache's build is inside the timed study).

Both use TensorFlow as configured by `import search` (oneDNN on unless you set
TF_ENABLE_ONEDNN_OPTS yourself) and the same seed per configuration.

    python bench/compare.py --weights PATH [--train 600 --val 300 --epochs 5 --naive-epochs 5
                                            --seeds 1 --first-rung 1 --reduction-factor 3
                                            --warmup-images 2048]

Prints per configuration the training images/s, seconds and best validation accuracy of both (and
how a study trial ended), the total wall time of each side, the speed-up, the best validation
accuracy of each side, and the peak RSS of its process. With `--seeds N` the whole comparison runs
N times, each in a fresh process, on the same data with other seeds (initial weights, batch
order, dropout, augmentation, and the study's Hyperband brackets through its name), then a table
of each run's totals and their mean: one seed per configuration cannot tell the two sides' best
apart by less than ~0.02.
"""
from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import search  # noqa: E402,F401  (TensorFlow's environment first)
import keras  # noqa: E402
import optuna  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from search.cache import FeatureCache  # noqa: E402
from search.data import load_dataset  # noqa: E402
from search.memory import clear_session  # noqa: E402
from search.model import N_BLOCKS, assemble, build_suffix, frozen_prefix, load_vgg16, weights_id  # noqa: E402
from search.objective import Objective  # noqa: E402
from search.preprocess import augmenter, search_images  # noqa: E402
from search.progress import counted, task  # noqa: E402
from search.space import DEFAULT_SPACE, Space  # noqa: E402
from search.study import DEFAULT_EPOCHS, MONITOR, make_pruner  # noqa: E402
from search.train import WARMUP_IMAGES, EpochLog, n_batches  # noqa: E402

# (unfrozen_blocks, augment_strength): every cut, with and without augmentation.
CONFIGS = [(k, s) for k in range(N_BLOCKS + 1) for s in (0.0, 0.5)]
FIXED = dict(head_units=256, dropout=0.3, batch_size=64)
LEARNING_RATE = {0: 1e-3}  # head only; fine-tuning uses the low rate below
FINE_TUNE_RATE = 5e-5
CONSOLE = Console(width=180)  # full-width tables in logs and pipes too


def params_for(k: int, strength: float) -> dict:
    return dict(FIXED, unfrozen_blocks=k, augment_strength=strength,
                learning_rate=LEARNING_RATE.get(k, FINE_TUNE_RATE))


def study_space() -> Space:
    """The default space, widened to hold every configuration above (5 blocks, the head's rate)."""
    space = Space.from_file(DEFAULT_SPACE)
    space.params["unfrozen_blocks"]["high"] = N_BLOCKS
    space.params["learning_rate"]["high"] = max(LEARNING_RATE.values())
    return space


def study(configs, cache, train, val, n_classes, epochs, first_seed: int, first_rung: int = 1,
          reduction_factor: int = 3,
          warmup_images: int = WARMUP_IMAGES) -> list[optuna.trial.FrozenTrial]:
    """vggsearch's engine, with its defaults unless the pruner's `first_rung` and
    `reduction_factor` or the trials' `warmup_images` say otherwise:
    the configurations as the enqueued trials of one study, Hyperband-pruned, sharing one
    activation cache. Trial i is seeded first_seed + i, as naive's run i. Named by its seed:
    Hyperband puts a trial in a bracket by a hash of the study's name and the trial's number, and
    an unnamed study's name is random."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    run = optuna.create_study(study_name=f"compare-seed-{first_seed}", direction="maximize",
                              pruner=make_pruner("hyperband", epochs, first_rung,
                                                 reduction_factor),
                              sampler=optuna.samplers.TPESampler(seed=first_seed))
    for k, strength in configs:
        run.enqueue_trial(params_for(k, strength))
    run.optimize(Objective(study_space(), cache, train, val, n_classes, epochs, seed=first_seed,
                           warmup_images=warmup_images), n_trials=len(configs))
    return run.trials


def best_val(trial: optuna.trial.FrozenTrial) -> float:
    """A trial's best validation accuracy, pruned ones included (their last reported epochs)."""
    return max(trial.intermediate_values.values(), default=float("nan"))


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
    batches = n_batches(len(train.labels), params["batch_size"], epochs)
    with task(None, f"naive: {params['unfrozen_blocks']} unfrozen blocks, augmentation "
              f"{params['augment_strength']:g}", batches) as advance:
        log = EpochLog(len(train.labels), advance)
        model.fit(train.images, train.labels, batch_size=params["batch_size"], epochs=epochs,
                  validation_data=(val.images, val.labels), verbose=0, callbacks=[log])
    return log


def arg_parser(description: str, epochs: int, train: int = 2000,
               val: int = 500) -> argparse.ArgumentParser:
    """The flags the benchmarks here share: data, weights and sizes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--train", type=int, default=train, help="training images")
    parser.add_argument("--val", type=int, default=val, help="validation images")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--only", type=int, nargs="*", help="unfrozen block counts to run")
    return parser


def load_data(args: argparse.Namespace):
    """The dataset, its stratified training and validation images at the flags' sizes, and the
    VGG16 base."""
    data = load_dataset(args.dataset)
    total = args.train + args.val
    train, val = search_images(data, args.val / total, total, args.image_size)
    return data, train, val, load_vgg16(args.weights, args.image_size)


@contextmanager
def temporary_cache(args: argparse.Namespace, data, base):
    """An activation cache of `base` for the flags' weights and image size, in a temporary folder
    deleted afterwards: a benchmark builds it inside its timing, as a user's first study does."""
    with tempfile.TemporaryDirectory(prefix="vggsearch-bench-", ignore_cleanup_errors=True) as root:
        yield FeatureCache(Path(root), base, weights_id(args.weights), args.image_size,
                           data.flips_keep_label)


def seed_range(first_seed: int, configs) -> str:
    """The seeds of one comparison: configuration i is seeded first_seed + i."""
    return f"{first_seed}-{first_seed + len(configs) - 1}"


def compare_once(args, configs, naive_epochs, first_seed):
    """Both sides once, configuration i seeded first_seed + i; prints the per-configuration table
    and returns (naive seconds, study seconds, naive best, study best). Run in a fresh process
    each time: TensorFlow keeps memory of every model a process trains (see search.worker), about
    5 GiB per comparison at the search's size."""
    data, train, val, base = load_data(args)
    n_classes = len(data.class_names)
    runs, naive_seconds = [], []
    for i, (k, strength) in enumerate(configs):
        started = time.perf_counter()
        runs.append(naive(base, params_for(k, strength), train, val, n_classes, naive_epochs,
                          args.image_size, data.flips_keep_label, first_seed + i))
        naive_seconds.append(time.perf_counter() - started)
        clear_session()
    with temporary_cache(args, data, base) as cache:
        started = time.perf_counter()
        trials = study(configs, cache, train, val, n_classes, args.epochs, first_seed,
                       args.first_rung, args.reduction_factor, args.warmup_images)
        study_seconds = time.perf_counter() - started

    table = Table(title=f"{args.dataset}: {args.train} training / {args.val} validation images, "
                        f"{args.image_size} px, weights {Path(args.weights).name}; "
                        f"naive {naive_epochs} epochs, study at most {args.epochs} (first "
                        f"rung after {counted(args.first_rung, 'epoch')}, factor "
                        f"{args.reduction_factor}, warm-up "
                        f"{args.warmup_images} images); "
                        f"seeds {seed_range(first_seed, configs)}")
    for column in ["unfrozen", "aug", "naive img/s", "naive s", "naive best val", "study img/s",
                   "study s (with cache)", "study trial", "study best val", "speed-up"]:
        table.add_column(column, justify="right")
    for (k, strength), slow, naive_s, trial in zip(configs, runs, naive_seconds, trials):
        epochs = counted(trial.user_attrs.get("epochs_run", 0), "epoch")
        ended = (f"pruned after {epochs}" if trial.state == optuna.trial.TrialState.PRUNED
                 else f"{trial.state.name.lower()}, {epochs}")
        table.add_row(str(k), f"{strength:g}", f"{slow.images_per_second:.0f}", f"{naive_s:.1f}",
                      f"{max(e[MONITOR] for e in slow.epochs):.4f}",
                      f"{trial.user_attrs.get('images_per_second', 0):.0f}",
                      f"{trial.user_attrs['seconds']:.1f}", ended,
                      f"{best_val(trial):.4f}",
                      f"{naive_s / trial.user_attrs['seconds']:.1f}x")
    CONSOLE.print(table)
    naive_best = max(max(e[MONITOR] for e in slow.epochs) for slow in runs)
    study_best = max(best_val(t) for t in trials)
    CONSOLE.print(f"total: naive {sum(naive_seconds):.0f} s, study {study_seconds:.0f} s, "
                  f"speed-up {sum(naive_seconds) / study_seconds:.1f}x; best validation accuracy "
                  f"naive {naive_best:.4f}, study {study_best:.4f}")
    return sum(naive_seconds), study_seconds, naive_best, study_best


def main() -> None:
    parser = arg_parser(__doc__.split("\n\n")[0], epochs=DEFAULT_EPOCHS, train=600, val=300)
    parser.add_argument("--naive-epochs", type=int,
                        help="epochs of each naive run (default: --epochs; the published "
                             "experiments trained 15)")
    parser.add_argument("--first-rung", type=int, default=1,
                        help="epochs before the study's first Hyperband rung (the engine's: 1)")
    parser.add_argument("--reduction-factor", type=int, default=3,
                        help="the study's Hyperband keeps 1 in this many trials at each rung "
                             "(the engine's: 3)")
    parser.add_argument("--warmup-images", type=int, default=WARMUP_IMAGES,
                        help="the study's learning-rate warm-up (the engine's: %(default)s; the "
                             "naive loop has none)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="run the whole comparison this many times with other seeds")
    args = parser.parse_args()
    if not 1 <= args.first_rung <= args.epochs:
        parser.error(f"--first-rung must be from 1 to --epochs ({args.epochs})")
    if args.reduction_factor < 2:
        parser.error("--reduction-factor must be 2 or more")
    naive_epochs = args.naive_epochs or args.epochs
    configs = [c for c in CONFIGS if args.only is None or c[0] in args.only]
    first_seeds = [repeat * len(configs) for repeat in range(args.seeds)]
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        totals = pool.starmap(compare_once, [(args, configs, naive_epochs, first)
                                             for first in first_seeds])
    if args.seeds > 1:
        table = Table(title="each run's totals")
        for column in ["seeds", "naive s", "study s", "speed-up", "naive best val",
                       "study best val", "study - naive"]:
            table.add_column(column, justify="right")
        rows = [(seed_range(first, configs), *t) for first, t in zip(first_seeds, totals)]
        rows.append(("mean", *map(statistics.mean, zip(*totals))))
        for seeds, naive_s, study_s, naive_best, study_best in rows:
            table.add_row(seeds, f"{naive_s:.0f}", f"{study_s:.0f}", f"{naive_s / study_s:.1f}x",
                          f"{naive_best:.4f}", f"{study_best:.4f}",
                          f"{study_best - naive_best:+.4f}")
        CONSOLE.print(table)
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    CONSOLE.print(f"peak RSS {peak_gib:.2f} GiB (the largest comparison's process)")


if __name__ == "__main__":
    main()
