"""The whole run, top to bottom: dataset (and a preview of it) -> preprocessing -> frozen-prefix
cache -> study of trials -> best trial -> retrain -> test report and saved model. The CLI calls these two functions.

    from search.pipeline import run_search
    run_search("digits", trials=6, subset=500, weights="none")
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import optuna

from search.cache import FeatureCache
from search.confirm import confirm
from search.data import BUILTIN, load_dataset, split_for_search, training_images
from search.errors import LostTrial, SurplusTrial, UserError
from search.export import CALIBRATION_IMAGES, export, measure, save_model
from search.model import N_BLOCKS, load_vgg16, suffix_dtype, weights_id
from search.memory import anon_rss_mb, clear_session
from search.objective import Objective
from search.preview import preview
from search.progress import console, counted, new_progress
from search.dashboard import note_report, note_settings, upload_best
from search.report import add_exports, confirmation_table, markdown, write_atomic, write_report
from search.retrain import ensemble_accuracy, evaluate, retrain, top_trials
from search.shared_study import (check_not_surplus, record_retrained, retrain_claim,
                                 target_reached)
from search.space import DEFAULT_SPACE, Space
from search.worker import DEFAULT_MEMORY_LIMIT_MB, TrialsJob, run_trials, run_trials_here
from search.study import (DEFAULT_CONFIRM_TOP, DEFAULT_EPOCHS, DEFAULT_SUBSET,
                          DEFAULT_VAL_FRACTION, FINISHED, SearchSettings, best_trial, check_engine,
                          check_pruning_steps, connect, count_finished, default_storage,
                          load_study, open_study, trial_counts)


def run_search(dataset: str = "mnist", trials: int = 50, *, study_name: str | None = None,
               storage: str | None = None, studies_dir="studies", space=DEFAULT_SPACE,
               subset: int | str = DEFAULT_SUBSET, image_size: int = 32, weights: str = "imagenet",
               val_fraction: float = DEFAULT_VAL_FRACTION, epochs: int = DEFAULT_EPOCHS,
               pruner: str = "hyperband", seed: int | None = None, do_retrain: bool = True,
               retrain_epochs: int | None = None, retrain_subset: int | str = "all",
               cache_dir=None, ensemble: int = 1, confirm_top: int = DEFAULT_CONFIRM_TOP,
               memory_limit_mb: float | None = DEFAULT_MEMORY_LIMIT_MB,
               keras_tuner: str | None = None, workers: int = 1,
               separate_process: bool = True) -> dict:
    """Run (or resume) the study until it has `trials` finished trials, then retrain and report.
    The trials run in worker processes replaced when their memory passes `memory_limit_mb`
    (search.worker); `separate_process=False` runs them in this one (tests, debugging).
    `keras_tuner` ('hyperband', 'bayesian' or 'random') searches with KerasTuner instead of
    Optuna's TPE sampler and pruner (search.tuner). `workers` processes run trials side by side
    on the study; they need a storage several processes can write (not SQLite). Of several
    commands sharing the study, one retrains (search.shared_study)."""
    if trials < 1:
        raise UserError(f"--trials must be at least 1, got {trials}")
    if epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {epochs}")
    if not 0 < val_fraction < 1:
        raise UserError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    if subset != "all" and subset < 10:
        raise UserError(f"--subset must be at least 10 images, got {subset}")
    check_confirm(confirm_top)
    suffix_dtype(N_BLOCKS)  # a bad VGGSEARCH_PRECISION is an error now, not in every trial
    url = storage or default_storage(studies_dir)
    if workers > 1 and (keras_tuner or url.startswith("sqlite") or not separate_process):
        raise UserError("--workers above 1 runs Optuna's trials in several processes on one "
                        "study: give a storage they can share, e.g. --storage "
                        f"journal:///{Path(studies_dir).resolve() / 'vggsearch.journal'} (one "
                        "host), postgresql://... or redis://... (KerasTuner runs one worker)")
    space = Space.from_file(space)
    data = load_dataset(dataset)
    if subset == "all" or subset >= len(data.y_train):
        subset = None  # every training image, recorded as such
    base = load_vgg16(weights, image_size)
    settings = SearchSettings(
        dataset=dataset if dataset in BUILTIN else str(Path(dataset).resolve()),
        subset=subset, image_size=image_size, weights=weights, weights_id=weights_id(weights),
        val_fraction=val_fraction, epochs=epochs, space=space.params)
    split_for_search(data, val_fraction, subset)  # a split that cannot be made is an error now
    study = open_study(connect(url), study_name or data.name, settings, seed, pruner)
    check_engine(study, f"keras-tuner/{keras_tuner}" if keras_tuner else "optuna")
    check_pruning_steps(study)
    note_settings(study, settings, trials)  # for the dashboard; the report replaces it

    out_dir = Path(studies_dir) / study.study_name
    shown = preview(data, space.levels("augment_strength"), out_dir / "preview.png", image_size)
    console.print(f"what the search trains on: {shown.path}")
    cache_dir = Path(cache_dir or Path(studies_dir) / "cache")
    job = TrialsJob(url, study.study_name, settings, trials, seed, pruner, str(cache_dir),
                    memory_limit_mb, keras_tuner, str(out_dir / "keras_tuner"))
    started = time.perf_counter()
    if separate_process:
        run_trials(job, workers)
    else:  # no fresh process to continue in: no memory limit
        run_trials_here(dataclasses.replace(job, memory_limit_mb=None))
    seconds = {"search": time.perf_counter() - started}
    summary = {**summarize(study), "search_seconds": seconds["search"]}
    if do_retrain:
        with retrain_claim(study) as ours:  # one of the commands sharing the study retrains
            if ours:
                cache = FeatureCache(cache_dir, base, settings.weights_id, image_size,
                                     data.flips_keep_label)
                summary["report"] = retrain_and_report(study, settings, data, cache, out_dir,
                                                       retrain_epochs, retrain_subset, seconds,
                                                       ensemble, confirm_top)
    return summary


def compare_engines(dataset: str, trials: int, tuner: str = "hyperband", **options) -> list[dict]:
    """The same search (data, space, budget, retrain) run by Optuna and by KerasTuner's `tuner`,
    as two studies named <dataset>-optuna and <dataset>-keras-tuner-<tuner>; one row per engine,
    also written to <studies-dir>/compare-<dataset>.json."""
    base_name, rows = load_dataset(dataset).name, []
    for engine, keras_tuner in [("optuna", None), (f"keras-tuner {tuner}", tuner)]:
        name = f"{base_name}-{engine.replace(' ', '-')}"
        summary = run_search(dataset, trials, study_name=name, keras_tuner=keras_tuner, **options)
        report = summary.get("report")
        rows.append({"engine": engine, "study": name, "best_value": summary["best_value"],
                     "test_accuracy": report["test"]["test_accuracy"] if report else None,
                     "search_seconds": summary["search_seconds"],
                     "retrain_seconds": report["seconds"]["retrain"] if report else 0.0,
                     **summary["trials"]})
    write_atomic(Path(options.get("studies_dir", "studies")) / f"compare-{base_name}.json",
                 json.dumps(rows, indent=2))
    return rows


def optimize(study: optuna.Study, objective: Objective, trials: int, progress,
             memory_limit_mb: float | None = None) -> bool:
    """Run only the trials still missing for `trials` finished ones (resuming where it stopped).
    Returns True when it stopped early because this process's memory passed `memory_limit_mb`."""
    show = study_progress(study, trials, progress)
    over_limit = False

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal over_limit
        show(study, trial)
        rss = anon_rss_mb()
        if memory_limit_mb and rss and rss > memory_limit_mb and count_finished(study) < trials:
            console.print(f"worker memory {rss:.0f} MB > {memory_limit_mb:.0f} MB: continuing "
                          "in a fresh worker process")
            over_limit = True
            study.stop()
        elif target_reached(study, trials):
            study.stop()

    done = count_finished(study)
    remaining = trials - done
    if remaining > 0:
        console.print(f"study {study.study_name}: {done} finished trials, running {remaining} more")

    lost = []  # numbers of this worker's trials failed as stale elsewhere

    def run_trial(trial: optuna.Trial) -> float:
        check_not_surplus(trial, trials)
        try:
            return objective(trial)
        except optuna.exceptions.UpdateFinishedTrialError as err:
            lost.append(trial.number)
            raise LostTrial(f"trial {trial.number} was failed as stale elsewhere") from err

    while not target_reached(study, trials):
        try:
            study.optimize(run_trial, n_trials=trials - count_finished(study), gc_after_trial=True,
                           callbacks=[after_trial], catch=(SurplusTrial,))
            break
        except ValueError:  # Optuna's "Cannot tell a FAIL trial" (optuna/optuna#5470)
            if not lost:
                raise
            console.print(f"trial {lost.pop()}: failed as stale by another worker while it ran "
                          "here (its heartbeats came late); dropped, its queued copy runs instead")
    return over_limit


def study_progress(study: optuna.Study, trials: int, progress):
    """A callback for each finished trial: the study's progress bar and the trial's line."""
    study_task = progress.add_task(f"study {study.study_name}", total=trials,
                                   completed=count_finished(study))

    def show(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        clear_session()  # the trial's model, graphs and dataset
        finished = study.get_trials(deepcopy=False, states=FINISHED)
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in finished)
        best = max((t.value for t in finished if t.value is not None
                    and t.state == optuna.trial.TrialState.COMPLETE), default=float("nan"))
        progress.update(study_task, completed=len(finished),
                        description=f"study {study.study_name} · best {best:.4f} · pruned {pruned}")
        console.print(trial_line(trial))

    return show


def trial_line(trial: optuna.trial.FrozenTrial) -> str:
    attrs, p = trial.user_attrs, trial.params
    config = (f"{p.get('unfrozen_blocks')} unfrozen, lr {p.get('learning_rate', 0):.2g}, "
              f"batch {p.get('batch_size')}, aug {p.get('augment_strength')}")
    speed = (f"{attrs.get('seconds', 0):.0f} s, {attrs.get('images_per_second', 0):.0f} img/s"
             f" in {attrs.get('compute_dtype', 'float32')}")
    if trial.state == optuna.trial.TrialState.PRUNED:
        last = trial.intermediate_values.get(max(trial.intermediate_values, default=-1))
        epochs = counted(attrs.get("epochs_run", 0), "epoch")
        return (f"trial {trial.number} pruned after {epochs} at "
                f"val_accuracy {last:.4f} ({attrs.get('pruned_reason', '')}) [{config}; {speed}]")
    if "not_run" in attrs:
        return f"trial {trial.number} {attrs['not_run']}"
    if trial.value is None:  # failed
        return f"trial {trial.number} {trial.state.name.lower()} [{config}; {speed}]"
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


def check_confirm(confirm_top: int) -> None:
    if confirm_top < 0:
        raise UserError(f"--confirm must be 0 (off) or more configurations, got {confirm_top}")


def retrain_and_report(study, settings: SearchSettings, data, cache: FeatureCache, out_dir: Path,
                       epochs=None, subset="all", seconds=None, ensemble: int = 1,
                       confirm_top: int = 0) -> dict:
    """Retrain the best trial (and the next `ensemble - 1` distinct configurations), test, report.
    With `confirm_top` K, the K best configurations are first run again with another seed and
    reordered by their mean (search.confirm)."""
    seconds = dict(seconds or {})
    best_trial(study)  # a clear error when no trial has completed
    members = top_trials(study, max(ensemble, confirm_top))
    if len(members) < ensemble:
        console.print(f"only {len(members)} distinct completed configurations for an ensemble "
                      f"of {ensemble}", style="yellow")
    retrained, evaluations, confirmation = [], [], None
    with new_progress() as progress:
        cache.progress = progress
        if confirm_top and len(members) > 1:  # one configuration has nothing to be ordered against
            started = time.perf_counter()
            reruns = confirm(members[:confirm_top], settings, data, cache, progress=progress)
            members = [c.trial for c in reruns] + members[confirm_top:]
            seconds["confirm"] = time.perf_counter() - started
            confirmation = [c.as_dict() for c in reruns]
            console.print(confirmation_table(confirmation))
        started = time.perf_counter()
        members = members[:ensemble]
        for trial in members:
            if retrained:
                clear_session()  # the previous member's training graph and batches
            retrained.append(retrain(trial, settings, data, cache, epochs, subset,
                                     progress=progress))
            evaluations.append(evaluate(retrained[-1].model, data, settings.image_size, progress))
    best, evaluation = retrained[0], evaluations[0]
    save_model(best.model, out_dir, data.class_names, settings.image_size, best.params)
    seconds["retrain"] = time.perf_counter() - started
    combined = None
    if len(members) > 1:
        combined = {"trials": [t.number for t in members],
                    "member_test_accuracy": [e["test_accuracy"] for e in evaluations],
                    "test_accuracy": ensemble_accuracy(evaluations)}
    report = write_report(out_dir, study, settings, best, evaluation, data.class_names, seconds,
                          combined, confirmation)
    note_report(study, markdown(report, pictures=False))
    upload_best(study, out_dir, out_dir.parent)
    record_retrained(study)
    console.print(f"test accuracy {evaluation['test_accuracy']:.4f} "
                  f"(loss {evaluation['test_loss']:.4f}, {evaluation['n_test']} images); "
                  f"report and model in {out_dir}/")
    if combined:
        console.print(f"ensemble of trials {combined['trials']} (averaged probabilities): test "
                      f"accuracy {combined['test_accuracy']:.4f}; members "
                      + ", ".join(f"{a:.4f}" for a in combined["member_test_accuracy"]))
    return report


def retrain_study(study_name: str, *, storage: str | None = None, studies_dir="studies",
                  epochs: int | None = None, subset: int | str = "all",
                  cache_dir=None, ensemble: int = 1,
                  confirm_top: int = DEFAULT_CONFIRM_TOP) -> dict:
    """Retrain and report an existing study's best trial (data and model from its settings)."""
    check_confirm(confirm_top)
    study, settings = load_study(connect(storage or default_storage(studies_dir)), study_name)
    data = load_dataset(settings.dataset)
    base = load_vgg16(settings.weights, settings.image_size)
    if weights_id(settings.weights) != settings.weights_id:
        raise UserError(f"weights file {settings.weights} changed since the study was made")
    cache = FeatureCache(Path(cache_dir or Path(studies_dir) / "cache"), base,
                         settings.weights_id, settings.image_size, data.flips_keep_label)
    return retrain_and_report(study, settings, data, cache, Path(studies_dir) / study_name,
                              epochs, subset, ensemble=ensemble, confirm_top=confirm_top)


def export_study(study_name: str, formats: list[str], *, out=None, storage: str | None = None,
                 studies_dir="studies") -> list[dict]:
    """Export a study's retrained model in each format, evaluate every file on the test set and
    keep the table in the study's report; returns its rows."""
    study, settings = load_study(connect(storage or default_storage(studies_dir)), study_name)
    if out is not None and len(formats) > 1:
        raise UserError("--out names one file: give one --format with it")
    study_dir = Path(studies_dir) / study_name
    data = load_dataset(settings.dataset)
    report_file = study_dir / "report.json"
    keras_accuracy = (json.loads(report_file.read_text())["test"]["test_accuracy"]
                      if report_file.is_file() else None)
    calibration, _ = training_images(data, min(CALIBRATION_IMAGES, len(data.y_train)))
    rows = []
    with new_progress() as progress:
        for fmt in formats:
            path = export(study_dir, fmt, out, calibration)
            console.print(f"exported {fmt}: {path}")
            rows.append(measure(path, data, keras_accuracy, progress))
    if report_file.is_file():
        note_report(study, markdown(add_exports(study_dir, rows), pictures=False))
    return rows
