"""KerasTuner as a second search engine over the same space, data, activation cache and study.

A KerasTuner trial builds the suffix for its `HyperParameters` (the space file translated by
`Space.declare`) and fits it on the cached activations, as an Optuna trial does. Every finished
KerasTuner trial is also written to the Optuna study (same parameter names, validation accuracy per
epoch as intermediate values), so `report`, `dashboard`, `retrain` and `export` work unchanged.
KerasTuner's own state (oracle, checkpoints) lives in <study folder>/keras_tuner: that is what
resumes. Hyperband's short rounds are recorded as pruned trials (it stopped them at the round's
budget); a configuration it promotes continues from its checkpoint as a new trial.
"""
from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import keras_tuner
import optuna
from optuna.trial import TrialState

from search.memory import anon_rss_mb
from search.objective import trial_attrs
from search.progress import console, task
from search.study import MONITOR, count_finished
from search.train import EpochLog, compiled_suffix, fit_suffix, n_batches

# Hyperband continues a promoted configuration from its checkpoint's weights with a fresh optimizer
# (KerasTuner's way); Keras warns about the optimizer state it does not load, every time.
warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
TRIAL_ATTR = "keras_tuner_trial"  # the KerasTuner trial id an Optuna trial was recorded from


class SuffixHyperModel(keras_tuner.HyperModel):
    """`build(hp)`: the compiled suffix of a configuration; `fit`: train it on cached activations."""

    def __init__(self, space, cache, train, val, n_classes: int, progress=None):
        super().__init__(name="vgg16_suffix")
        self.space, self.cache, self.train, self.val = space, cache, train, val
        self.n_classes, self.progress = n_classes, progress
        self.seed = 0  # set per trial by the tuner
        self.log: EpochLog | None = None  # the last fit's epochs
        self.started = 0.0

    def build(self, hp):
        self.started = time.perf_counter()
        params = self.space.declare(hp)
        return compiled_suffix(params, self.cache, self.train, self.val, self.n_classes, self.seed)

    def fit(self, hp, model, *args, epochs: int = 1, initial_epoch: int = 0, callbacks=(),
            **kwargs):
        params = {name: hp.values[name] for name in self.space.params}
        n = len(self.train.labels)
        batches = n_batches(n, params["batch_size"], epochs - initial_epoch)
        with task(self.progress, f"keras-tuner trial: {params['unfrozen_blocks']} unfrozen "
                  f"blocks, batch {params['batch_size']}", batches) as advance:
            self.log = EpochLog(n, advance)
            return fit_suffix(model, params, self.cache, self.train, self.val, epochs, self.seed,
                              [self.log, *callbacks], initial_epoch)


class _StopSearch(Exception):
    """Raised between trials: the study has its trials, or this process its memory limit."""


class _Recording:
    """Mixed into KerasTuner's tuners: each finished trial is also written to the Optuna study,
    and the search stops between trials at the study's target or at the memory limit."""

    def setup(self, study: optuna.Study, space, trials: int, epochs: int, seed: int,
              memory_limit_mb: float | None, after_trial) -> None:
        self.study, self.space, self.trials, self.epochs, self.seed = (study, space, trials,
                                                                       epochs, seed)
        self.memory_limit_mb, self.after_trial, self.over_limit = memory_limit_mb, after_trial, False
        self.runs = {}  # KerasTuner trial id -> (EpochLog, seconds) of the trials run here

    def on_trial_begin(self, trial):
        self.hypermodel.seed = self.seed + int(trial.trial_id)
        self.hypermodel.log = None  # a trial that fails before fitting has no epochs
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        log = self.hypermodel.log
        if log is not None:
            self.runs[trial.trial_id] = (log, time.perf_counter() - self.hypermodel.started)
        super().on_trial_end(trial)  # KerasTuner's oracle learns the result and saves its state
        self.record_new_trials()
        if count_finished(self.study) >= self.trials:
            raise _StopSearch
        rss = anon_rss_mb()
        if self.memory_limit_mb and rss and rss > self.memory_limit_mb:
            self.over_limit = True
            raise _StopSearch

    def record_new_trials(self) -> None:
        """Write the KerasTuner trials that ended and are not in the Optuna study yet (also those
        of a run that stopped between the two saves)."""
        recorded = {t.user_attrs.get(TRIAL_ATTR) for t in self.study.get_trials(deepcopy=False)}
        for trial_id, kt_trial in sorted(self.oracle.trials.items()):
            if trial_id in recorded or kt_trial.status not in ("COMPLETED", "FAILED", "INVALID"):
                continue
            frozen = self._as_optuna(kt_trial)
            self.study.add_trial(frozen)
            self.after_trial(self.study, self.study.get_trials(deepcopy=False)[-1])

    def _as_optuna(self, kt_trial) -> optuna.trial.FrozenTrial:
        values = kt_trial.hyperparameters.values
        attrs = {TRIAL_ATTR: kt_trial.trial_id, "engine": "keras-tuner"}
        if kt_trial.trial_id in self.runs:
            log, seconds = self.runs.pop(kt_trial.trial_id)
            attrs.update(trial_attrs(log, seconds, values["unfrozen_blocks"]))
            scores = {e["epoch"]: e[MONITOR] for e in log.epochs  # step: epochs done, as Optuna's
                      if math.isfinite(e.get(MONITOR, math.nan))}
        else:  # ended in an earlier process before it was recorded: KerasTuner kept its best epoch
            scores = {}
            if kt_trial.metrics.exists(MONITOR):
                best = kt_trial.metrics.get_best_step(MONITOR) + 1  # KerasTuner counts from 0
                scores[best] = kt_trial.metrics.get_best_value(MONITOR)
                attrs["best_epoch"] = best
        budget = values.get("tuner/epochs", self.epochs)
        state = TrialState.FAIL
        if kt_trial.status == "COMPLETED" and scores:
            state = TrialState.COMPLETE
            if budget < self.epochs:
                state = TrialState.PRUNED
                attrs["pruned_reason"] = f"Hyperband round of {budget} epochs"
        if "tuner/trial_id" in values:
            attrs["continues_keras_tuner_trial"] = values["tuner/trial_id"]
        return optuna.trial.create_trial(
            params={name: values[name] for name in self.space.params},
            distributions=self.space.distributions(),
            value=max(scores.values()) if state != TrialState.FAIL else None,
            intermediate_values=scores, user_attrs=attrs, state=state)


def make_tuner(kind: str, hypermodel: SuffixHyperModel, directory: Path, project: str,
               trials: int, epochs: int, seed: int):
    """A KerasTuner tuner of `kind` that records into the Optuna study (see `_Recording`)."""
    objective = keras_tuner.Objective(MONITOR, direction="max")
    common = dict(hypermodel=hypermodel, objective=objective, seed=seed, overwrite=False,
                  directory=str(directory), project_name=project, max_consecutive_failed_trials=3)
    if kind == "hyperband":
        # Enough Hyperband iterations for `trials`: the search stops itself at the target.
        base, extra = keras_tuner.Hyperband, dict(max_epochs=epochs, factor=3,
                                                  hyperband_iterations=trials)
    elif kind == "bayesian":
        base, extra = keras_tuner.BayesianOptimization, dict(max_trials=trials)
    elif kind == "random":
        base, extra = keras_tuner.RandomSearch, dict(max_trials=trials)
    else:
        raise ValueError(f"unknown tuner {kind!r}")
    tuner_class = type(f"Recording{base.__name__}", (_Recording, base), {})
    return tuner_class(**common, **extra)


def tune(study: optuna.Study, kind: str, hypermodel: SuffixHyperModel, directory: Path,
         trials: int, epochs: int, seed: int, memory_limit_mb: float | None,
         after_trial) -> bool:
    """Run KerasTuner until the study has `trials` finished trials. Returns True when it stopped
    early because this process's memory passed `memory_limit_mb`."""
    tuner = make_tuner(kind, hypermodel, directory, kind, trials, epochs, seed)
    tuner.setup(study, hypermodel.space, trials, epochs, seed, memory_limit_mb, after_trial)
    tuner.record_new_trials()
    done = count_finished(study)
    if done >= trials:
        return False
    console.print(f"study {study.study_name} (keras-tuner {kind}): {done} finished trials, "
                  f"running {trials - done} more")
    try:
        tuner.search(epochs=epochs, verbose=0)
    except _StopSearch:
        pass
    if count_finished(study) < trials and not tuner.over_limit:
        console.print(f"keras-tuner {kind} ran out of configurations after "
                      f"{count_finished(study)} trials", style="yellow")
    return tuner.over_limit

