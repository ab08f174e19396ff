"""Pruner settings by experiment: record learning curves once, replay them through Optuna's pruners.

A pruner's trade-off is how much training it saves against how often it stops the configuration
that would have won. This draws `--configs` configurations at random from the default space
(Optuna's RandomSampler, seeded), trains each through vggsearch's engine (shared activation cache,
`train_suffix`, trial i seeded i as a study's trial i is) for `--epochs` epochs without pruning at
the search's default size (2 400 training, 600 validation images: `--subset 3000`), and records
each epoch's validation accuracy and the seconds from the trial's start to that epoch's end. Then,
for `--orders` random orders of those configurations, it replays the curves through each pruner
in a fresh in-memory study (named after the order, so Hyperband's brackets differ between orders and
repeat between runs):
each trial reports its epochs as `KerasPruningCallback` does and stops where the pruner says; its
cost is the recorded seconds up to there. Prints the curves, then per pruner: the mean share of
the unpruned cost, the mean regret (how much lower the best complete trial's value is than the best
configuration's) and how often the best configuration was the study's best.

    python bench/pruners.py --weights PATH [--configs 30 --orders 500 --save FILE | --curves FILE]
"""
from __future__ import annotations

import json
import random
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compare import arg_parser, load_data, temporary_cache  # noqa: E402  (bench/compare.py)
from fidelity import describe, random_configs  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from search.memory import clear_session  # noqa: E402
from search.model import N_BLOCKS  # noqa: E402
from search.progress import task  # noqa: E402
from search.study import DEFAULT_EPOCHS, MONITOR, make_pruner  # noqa: E402
from search.train import EpochLog, train_suffix  # noqa: E402


class Clock(keras.callbacks.Callback):
    """Seconds from `started` to each epoch's end, validation included."""

    def __init__(self, started: float):
        super().__init__()
        self.started, self.ends = started, []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter() - self.started)


def record(args) -> list[dict]:
    """Train every configuration all epochs; its curve and the seconds to each epoch's end."""
    data, train, val, base = load_data(args)
    configs = random_configs(args.configs, args.seed)
    runs = []
    with temporary_cache(args, data, base) as cache:
        for params in configs:  # every cached view first: building one is not a trial's cost
            frozen = N_BLOCKS - params["unfrozen_blocks"]
            cache.training_views(train, frozen, params["augment_strength"])
            cache.activations(val, frozen)
        with task(None, "training every configuration unpruned", len(configs)) as advance:
            for i, params in enumerate(configs):
                log, clock = EpochLog(len(train.labels)), Clock(time.perf_counter())
                train_suffix(params, cache, train, val, len(data.class_names), args.epochs, i,
                             [log, clock])
                clear_session()
                runs.append({"params": params, "accuracy": [e[MONITOR] for e in log.epochs],
                             "seconds": clock.ends})
                advance()
    return runs


def variants(epochs: int) -> dict:
    """name -> (a new pruner, what a trial adds to Keras's epoch index, from 0, to make its step).
    KerasPruningCallback adds 0, so min_resource=1 is 2 epochs; vggsearch's callback adds 1 (the
    epochs done), so the first rung is 1 epoch."""
    table = {"none": (partial(make_pruner, "none", epochs), 0)}
    for factor in (2, 3, 4):
        new = partial(make_pruner, "hyperband", epochs, reduction_factor=factor)
        table[f"hyperband, factor {factor}, step = epoch index"] = (new, 0)
        table[f"hyperband, factor {factor}, step = epochs done"] = (new, 1)
    table["halving, factor 3, step = epoch index"] = (partial(make_pruner, "halving", epochs), 0)
    table["median, 3 startup trials, step = epoch index"] = (
        partial(make_pruner, "median", epochs), 0)
    return table


def replay(runs: list[dict], new_pruner, step_offset: int, order: list[int],
           name: str) -> tuple[float, int]:
    """One study over `runs` in `order`: its training seconds and the index of its best trial.
    The study's name places Hyperband's trials in brackets."""
    study = optuna.create_study(study_name=name, direction="maximize", pruner=new_pruner())
    cost, complete = 0.0, []
    for i in order:
        trial, curve, seconds = study.ask(), runs[i]["accuracy"], runs[i]["seconds"]
        for epoch, value in enumerate(curve):
            trial.report(value, epoch + step_offset)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                cost += seconds[epoch]
                break
        else:
            study.tell(trial, max(curve))
            cost += seconds[-1]
            complete.append(i)
    return cost, max(complete, key=lambda i: max(runs[i]["accuracy"]))


def main() -> None:
    parser = arg_parser(__doc__.split("\n\n")[0], epochs=DEFAULT_EPOCHS, train=2400, val=600)
    parser.add_argument("--configs", type=int, default=30, help="configurations to draw")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw and the orders")
    parser.add_argument("--orders", type=int, default=500, help="random orders to replay")
    parser.add_argument("--save", type=Path, help="write the recorded curves to this JSON file")
    parser.add_argument("--curves", type=Path, help="replay curves saved by --save, no training")
    args = parser.parse_args()
    runs = json.loads(args.curves.read_text()) if args.curves else record(args)
    if args.save:
        args.save.write_text(json.dumps(runs, indent=1))

    console = Console(width=200)
    curves = Table(title="validation accuracy by epoch, trained unpruned; seconds to the last "
                         "epoch's end")
    curves.add_column("configuration")
    epochs = len(runs[0]["accuracy"])
    for e in range(epochs):
        curves.add_column(f"e{e + 1}", justify="right")
    curves.add_column("s", justify="right")
    for run in runs:
        curves.add_row(describe(run["params"]), *(f"{a:.4f}" for a in run["accuracy"]),
                       f"{run['seconds'][-1]:.0f}")
    console.print(curves)

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    finals = np.array([max(run["accuracy"]) for run in runs])
    unpruned = sum(run["seconds"][-1] for run in runs)
    shuffle = random.Random(args.seed)
    orders = [shuffle.sample(range(len(runs)), len(runs)) for _ in range(args.orders)]
    summary = Table(title=f"{len(runs)} configurations, {args.orders} random orders; unpruned "
                          f"cost {unpruned:.0f} s, best configuration {finals.max():.4f}")
    for column in ["pruner", "share of the unpruned cost", "mean regret", "worst regret",
                   "best configuration found"]:
        summary.add_column(column, justify="right")
    for name, (new_pruner, step_offset) in variants(epochs).items():
        results = [replay(runs, new_pruner, step_offset, order, f"order {k}")
                   for k, order in enumerate(orders)]
        regrets = np.array([finals.max() - finals[best] for _, best in results])
        summary.add_row(name, f"{np.mean([c for c, _ in results]) / unpruned:.2f}",
                        f"{regrets.mean():.4f}", f"{regrets.max():.4f}",
                        f"{np.mean(regrets == 0):.0%}")
    console.print(summary)


if __name__ == "__main__":
    main()
