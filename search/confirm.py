"""Between the study and the retrain (`--confirm K`, 2 by default; 0 off): train the K best
configurations again with another seed and retrain the one with the best mean.

A trial's value is one seed's best epoch on few validation images (600 by default), and the study
retrains the highest of dozens: the luckiest run twice over. bench/selection.py measured it on the
seed-2 default MNIST study: its first trial, #35 (0.9833), scored 0.9550 and 0.9567 with two other
seeds, its tie #47 (0.9833) 0.9800 and 0.9650; retrained on all images, #35 tested at 0.9937 and
#47 at 0.9954. A rerun trains the configuration as its trial trained (the study's split and
cache, the same epochs: up to the trial's best) with another seed; the configurations are ordered
by their validation accuracy at that epoch averaged over the study's seed and the new ones.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from search.cache import FeatureCache
from search.data import Dataset
from search.memory import clear_session
from search.preprocess import ImageSet, search_images
from search.progress import task
from search.study import SearchSettings
from search.train import EpochLog, n_batches, train_suffix

OTHER_SEEDS = 10_000  # rerun k of a trial trains with its seed + k * this (--confirm: k = 1)
# Means are compared at 6 decimals: two configurations with as many correct validation images in
# all keep the study's order, whatever float32's rounding of each accuracy adds (up to ~1e-7), and
# one image of 100 000 still counts.
MEAN_DECIMALS = 6


@dataclass
class Confirmation:
    trial: object  # optuna FrozenTrial
    values: list[float]  # validation accuracy at the trial's best epoch: the study's run first
    seeds: list[int]  # the reruns'
    seconds: float

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    def as_dict(self) -> dict:
        """What the report keeps (report.json's "confirmation")."""
        return {"trial": self.trial.number, "params": self.trial.params, "values": self.values,
                "seeds": self.seeds, "mean": self.mean, "seconds": round(self.seconds, 1)}


def training_seed(trial) -> int:
    """The seed the study trained `trial` with, as the trial recorded it (since 2026-12-07).
    Without the record (older studies, KerasTuner's trials) its number: the seed of Optuna's
    trial in a search without --seed; a rerun's seed differs from the study's all the same."""
    return int(trial.user_attrs.get("train_seed", trial.number))


def rerun(trial, cache: FeatureCache, train: ImageSet, val: ImageSet, n_classes: int, seed: int,
          callbacks=(), progress=None) -> float:
    """`trial`'s configuration trained as the study trained it, with `seed`, to the trial's best
    epoch: the validation accuracy there (the trial's value again with its own seed)."""
    epochs = int(trial.user_attrs["best_epoch"])
    steps = n_batches(len(train.labels), trial.params["batch_size"], epochs)
    with task(progress, f"confirming trial {trial.number} with seed {seed}", steps) as advance:
        log = EpochLog(len(train.labels), advance)
        train_suffix(trial.params, cache, train, val, n_classes, epochs, seed,
                     [log, *callbacks])
    clear_session()  # the rerun's model, graphs and batches
    return log.epochs[-1]["val_accuracy"] if len(log.epochs) == epochs else float("nan")


def confirm(trials: list, settings: SearchSettings, data: Dataset, cache: FeatureCache,
            progress=None) -> list[Confirmation]:
    """Each of `trials` run again with another seed; best mean first (ties: the given order). A
    rerun that diverges counts as NaN, which sorts last."""
    train, val = search_images(data, settings.val_fraction, settings.subset, settings.image_size)
    confirmed = []
    for trial in trials:
        started = time.perf_counter()
        seed = training_seed(trial) + OTHER_SEEDS
        value = rerun(trial, cache, train, val, len(data.class_names), seed, progress=progress)
        confirmed.append(Confirmation(trial, [trial.value, value], [seed],
                                      time.perf_counter() - started))
    return by_mean(confirmed)


def by_mean(confirmed: list[Confirmation]) -> list[Confirmation]:
    """Best mean first; equal means (at MEAN_DECIMALS) in the given order; NaN last."""
    return sorted(confirmed, key=lambda c: -round(c.mean, MEAN_DECIMALS) if c.mean == c.mean
                  else float("inf"))
