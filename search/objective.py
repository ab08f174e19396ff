"""One trial: sample a configuration, build its suffix, fit it on cached activations with pruning."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import optuna
from optuna_integration import KerasPruningCallback

from search.cache import FeatureCache
from search.heartbeat import beating
from search.memory import anon_rss_mb
from search.model import suffix_dtype
from search.preprocess import ImageSet
from search.progress import task
from search.space import Space
from search.study import MONITOR
from search.train import WARMUP_IMAGES, EpochLog, n_batches, train_suffix


class StrictPruningCallback(KerasPruningCallback):
    """optuna-integration's callback, except that a missing metric stops the trial (the library
    only warns, and a typo in the monitored name would silently switch pruning off), and that the
    step it reports is the epochs done, 1 to `--epochs`, not Keras's epoch index from 0: the
    pruners' resource is epochs, so `min_resource=1` is one epoch, not two (bench/pruners.py)."""

    def on_epoch_end(self, epoch, logs=None):
        if self._monitor not in (logs or {}):
            raise KeyError(f"pruning monitors {self._monitor!r} but the epoch's logs have only "
                           f"{sorted(logs or {})}")
        super().on_epoch_end(epoch + 1, logs)


@dataclass
class Objective:
    """`objective(trial)` for `study.optimize`: returns the best validation accuracy over epochs."""

    space: Space
    cache: FeatureCache
    train: ImageSet
    val: ImageSet
    n_classes: int
    epochs: int
    seed: int = 0
    progress: object = None  # the command's rich Progress, if it shows one
    worker: int = 0  # which of the worker processes side by side runs it (search --workers)
    warmup_images: int = WARMUP_IMAGES  # the learning rate's warm-up (bench/compare.py varies it)

    def __call__(self, trial: optuna.Trial) -> float:
        params = self.space.sample(trial)
        trial.set_user_attr("pid", os.getpid())  # which process runs it (crash recovery, tests)
        seed = self.seed + trial.number
        trial.set_user_attr("train_seed", seed)  # search.confirm reruns it with others
        batches = n_batches(len(self.train.labels), params["batch_size"], self.epochs)
        started = time.perf_counter()
        with task(self.progress, f"trial {trial.number}: {params['unfrozen_blocks']} unfrozen "
                  f"blocks, batch {params['batch_size']}", batches) as advance, beating(trial):
            log = EpochLog(len(self.train.labels), advance)
            try:
                suffix = train_suffix(params, self.cache, self.train, self.val, self.n_classes,
                                      self.epochs, seed,
                                      [log, StrictPruningCallback(trial, MONITOR)],
                                      warmup_images=self.warmup_images)
            except optuna.TrialPruned:
                pruner = type(trial.study.pruner).__name__
                trial.set_user_attr("pruned_reason", f"stopped by {pruner}")
                raise
            finally:
                _record(trial, log, time.perf_counter() - started)
                trial.set_user_attr("worker", self.worker)
        scores = [epoch[MONITOR] for epoch in log.epochs]
        if not scores or not all(s == s for s in scores):  # NaN: the loss diverged
            trial.set_user_attr("pruned_reason", "the loss diverged (NaN)")
            raise optuna.TrialPruned("the loss diverged (NaN)")
        trial.set_user_attr("trainable_params", int(suffix.count_params()))
        return max(scores)


def _record(trial: optuna.Trial, log: EpochLog, seconds: float) -> None:
    for name, value in trial_attrs(log, seconds, trial.params["unfrozen_blocks"]).items():
        trial.set_user_attr(name, value)


def trial_attrs(log: EpochLog, seconds: float, unfrozen_blocks: int) -> dict:
    """What the dashboard and the report show of a trial, whatever way it ended."""
    attrs = {"seconds": round(seconds, 1),
             "rss_mb": anon_rss_mb(),  # memory must stay flat over trials
             "compute_dtype": suffix_dtype(unfrozen_blocks)}  # the machine's choice
    if not log.epochs:
        return attrs
    best = max(log.epochs, key=lambda e: (e.get(MONITOR, float("nan")),
                                          -e.get("val_loss", float("inf"))))  # ties: lower loss
    return {**attrs, "epochs_run": len(log.epochs),
            "best_epoch": int(best["epoch"]),  # counted from the model's first epoch
            # breaks ties between trials of equal value (search.study.ranked_trials)
            "best_val_loss": round(best.get("val_loss", float("inf")), 5),
            "images_per_second": round(log.images_per_second, 1),
            "train_loss": [round(e["loss"], 5) for e in log.epochs]}
