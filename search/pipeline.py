"""The whole run, top to bottom: dataset (and a preview of it) -> preprocessing -> frozen-prefix
cache -> study of trials -> best trial -> retrain -> test report and saved model. The CLI calls these two functions.

    from search.pipeline import run_search
    run_search("digits", trials=6, subset=500, weights="none")
"""
from __future__ import annotations

import time
from pathlib import Path

import optuna

from search.cache import FeatureCache
from search.data import BUILTIN, load_dataset, split_for_search
from search.errors import UserError
from search.export import save_model
from search.model import load_vgg16, weights_id
from search.objective import Objective
from search.preprocess import prepare
from search.preview import preview
from search.progress import console, new_progress
from search.report import write_report
from search.retrain import evaluate, retrain
from search.space import DEFAULT_SPACE, Space
from search.study import (FINISHED, SearchSettings, best_trial, connect, count_finished,
                          default_storage, load_study, open_study, trial_counts)

DEFAULT_EPOCHS = 5  # the most epochs a trial trains: the pruners' resource
DEFAULT_VAL_FRACTION = 0.2


def run_search(dataset: str = "mnist", trials: int = 50, *, study_name: str | None = None,
               storage: str | None = None, studies_dir="studies", space=DEFAULT_SPACE,
               subset: int | None = None, image_size: int = 32, weights: str = "imagenet",
               val_fraction: float = DEFAULT_VAL_FRACTION, epochs: int = DEFAULT_EPOCHS,
               pruner: str = "hyperband", seed: int | None = None, do_retrain: bool = True,
               retrain_epochs: int | None = None, retrain_subset: int | str | None = None,
               cache_dir=None) -> dict:
    """Run (or resume) the study until it has `trials` finished trials, then retrain and report."""
    if trials < 1:
        raise UserError(f"--trials must be at least 1, got {trials}")
    if epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {epochs}")
    if not 0 < val_fraction < 1:
        raise UserError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    if subset is not None and subset < 10:
        raise UserError(f"--subset must be at least 10 images, got {subset}")
    space = Space.from_file(space)
    data = load_dataset(dataset)
    base = load_vgg16(weights, image_size)
    settings = SearchSettings(
        dataset=dataset if dataset in BUILTIN else str(Path(dataset).resolve()),
        subset=subset, image_size=image_size, weights=weights, weights_id=weights_id(weights),
        val_fraction=val_fraction, epochs=epochs, space=space.params)
    split = split_for_search(data, val_fraction, subset)
    storage = connect(storage or default_storage(studies_dir))
    study = open_study(storage, study_name or data.name, settings, seed, pruner)

    out_dir = Path(studies_dir) / study.study_name
    shown = preview(data, space.levels("augment_strength"), out_dir / "preview.png", image_size)
    console.print(f"what the search trains on: {shown.path}")
    train = prepare(split.x_train, split.y_train, image_size)
    val = prepare(split.x_val, split.y_val, image_size)
    started = time.perf_counter()
    with new_progress() as progress:
        cache = FeatureCache(Path(cache_dir or Path(studies_dir) / "cache"), base,
                             settings.weights_id, image_size, data.flips_keep_label,
                             progress=progress)
        objective = Objective(space, cache, train, val, len(data.class_names), epochs,
                              seed or 0, progress)
        optimize(study, objective, trials, progress)
    seconds = {"search": time.perf_counter() - started}
    summary = summarize(study)
    if do_retrain:
        summary["report"] = retrain_and_report(study, settings, data, cache, out_dir,
                                               retrain_epochs, retrain_subset, seconds)
    return summary


def optimize(study: optuna.Study, objective: Objective, trials: int, progress) -> None:
    """Run only the trials still missing for `trials` finished ones (resuming where it stopped)."""
    done = count_finished(study)
    study_task = progress.add_task(f"study {study.study_name}", total=trials, completed=done)

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        import keras

        keras.backend.clear_session()  # free the trial's graphs: memory stays flat over trials
        finished = study.get_trials(deepcopy=False, states=FINISHED)
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in finished)
        best = max((t.value for t in finished if t.value is not None), default=float("nan"))
        progress.update(study_task, completed=len(finished),
                        description=f"study {study.study_name} · best {best:.4f} · pruned {pruned}")
        console.print(trial_line(trial))

    remaining = trials - done
    if remaining > 0:
        console.print(f"study {study.study_name}: {done} finished trials, running {remaining} more")
        study.optimize(objective, n_trials=remaining, gc_after_trial=True,
                       callbacks=[optuna.study.MaxTrialsCallback(trials, states=FINISHED),
                                  after_trial])


def trial_line(trial: optuna.trial.FrozenTrial) -> str:
    attrs, p = trial.user_attrs, trial.params
    config = (f"{p.get('unfrozen_blocks')} unfrozen, lr {p.get('learning_rate', 0):.2g}, "
              f"batch {p.get('batch_size')}, aug {p.get('augment_strength')}")
    speed = f"{attrs.get('seconds', 0):.0f} s, {attrs.get('images_per_second', 0):.0f} img/s"
    if trial.state == optuna.trial.TrialState.PRUNED:
        last = trial.intermediate_values.get(max(trial.intermediate_values, default=-1))
        return (f"trial {trial.number} pruned after {attrs.get('epochs_run', 0)} epochs at "
                f"val_accuracy {last:.4f} ({attrs.get('pruned_reason', '')}) [{config}; {speed}]")
    return (f"trial {trial.number} {trial.state.name.lower()}: val_accuracy {trial.value:.4f} "
            f"[{config}; {speed}]")


def summarize(study: optuna.Study) -> dict:
    counts = trial_counts(study)
    best = best_trial(study)
    console.print(f"study {study.study_name}: {counts['complete']} complete, {counts['pruned']} "
                  f"pruned, {counts['fail']} failed; best trial #{best.number} "
                  f"val_accuracy {best.value:.4f} {best.params}")
    return {"study": study.study_name, "trials": counts, "best_value": best.value,
            "best_params": best.params, "best_trial": best.number}


def retrain_and_report(study, settings: SearchSettings, data, cache: FeatureCache, out_dir: Path,
                       epochs=None, subset=None, seconds=None) -> dict:
    seconds = dict(seconds or {})
    started = time.perf_counter()
    with new_progress() as progress:
        cache.progress = progress
        retrained = retrain(best_trial(study), settings, data, cache, epochs, subset,
                            progress=progress)
        evaluation = evaluate(retrained.model, data, settings.image_size, progress)
    save_model(retrained.model, out_dir, data.class_names, settings.image_size, retrained.params)
    seconds["retrain"] = time.perf_counter() - started
    report = write_report(out_dir, study, settings, retrained, evaluation, data.class_names,
                          seconds)
    console.print(f"test accuracy {evaluation['test_accuracy']:.4f} "
                  f"(loss {evaluation['test_loss']:.4f}, {evaluation['n_test']} images); "
                  f"report and model in {out_dir}/")
    return report


def retrain_study(study_name: str, *, storage: str | None = None, studies_dir="studies",
                  epochs: int | None = None, subset: int | str | None = None,
                  cache_dir=None) -> dict:
    """Retrain and report an existing study's best trial (data and model from its settings)."""
    study, settings = load_study(connect(storage or default_storage(studies_dir)), study_name)
    data = load_dataset(settings.dataset)
    base = load_vgg16(settings.weights, settings.image_size)
    if weights_id(settings.weights) != settings.weights_id:
        raise UserError(f"weights file {settings.weights} changed since the study was made")
    cache = FeatureCache(Path(cache_dir or Path(studies_dir) / "cache"), base,
                         settings.weights_id, settings.image_size, data.flips_keep_label)
    return retrain_and_report(study, settings, data, cache, Path(studies_dir) / study_name,
                              epochs, subset)
