"""The Optuna study: storage, sampler, pruner, the settings it was made with, resuming it."""
from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.errors import UserError

ENGINE_ATTR = "vggsearch_engine"
SETTINGS_ATTR = "vggsearch_settings"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
PRUNERS = ("hyperband", "halving", "median", "none")
TUNERS = ("hyperband", "bayesian", "random")  # KerasTuner's, for --engine keras-tuner
MONITOR = "val_accuracy"  # reported to the study every epoch; a trial's value is its best
DEFAULT_EPOCHS = 5  # the most epochs a trial trains: the pruners' resource
DEFAULT_VAL_FRACTION = 0.2
# Images a search ranks configurations on, validation share included (the retrain uses all):
# bench/fidelity.py measured rankings on 1 800 training images agreeing with those on 3x as many
# (Spearman 0.9) at a third of the cost, and worse on 600 (0.7-0.8).
DEFAULT_SUBSET = 3000
# Configurations rerun with another seed before the retrain (--confirm, search.confirm). On the
# default MNIST study it met the 90-min / 99.4 % target on all three seeds measured on a Zen 4
# (0.9959, 0.9953, 0.9954 in 79, 78, 73 min) where the study's own pick missed on seed 2
# (0.9937), for 3-5 min (README, "Confirming the top trials").
DEFAULT_CONFIRM_TOP = 2
# A RUNNING trial silent for 2 heartbeats belonged to a dead worker (tests set a few seconds).
HEARTBEAT_SECONDS = int(os.environ.get("VGGSEARCH_HEARTBEAT_SECONDS", "60"))
MAX_RETRIES = 2  # times a dead worker's trial is queued again
JOURNAL = "journal:///"
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True)
class SearchSettings:
    """What determines a study's data, model and space: a resumed study must use the same."""

    dataset: str
    subset: int | None
    image_size: int
    weights: str  # 'imagenet', 'none' or the weights file's path, as given
    weights_id: str  # 'imagenet', 'none' or the file's content hash
    val_fraction: float
    epochs: int
    space: dict


def default_storage(studies_dir) -> str:
    return f"sqlite:///{Path(studies_dir) / 'vggsearch.db'}"


def check_study_name(name: str) -> str:
    """Study names become folder names: no path separators, no leading dot."""
    if not STUDY_NAME.fullmatch(name):
        raise UserError(f"invalid study name {name!r}: use letters, digits, '_', '.', '-' "
                        "(no path separators, at most 100 characters)")
    return name


def connect(url: str):
    """The storage behind `url`, checked to answer now (not at the first trial).

    sqlite:///FILE, postgresql://..., mysql://... (PyMySQL): Optuna's RDB storage with heartbeats, so that a
    trial whose worker died (SIGKILL, power loss) is failed after the grace period and queued
    again, up to MAX_RETRIES times. journal:///FILE: a journal file, for several processes on one
    host. redis://HOST:PORT/DB: a Redis journal, for several hosts."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

    try:
        if url.startswith(("sqlite:///", JOURNAL)):
            path = Path(url.split(":///", 1)[1]).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
        if url.startswith(("sqlite", "postgresql", "mysql")):
            # SQLAlchemy's default MySQL driver is a C extension; PyMySQL is pure Python.
            engine_url = url.replace("mysql://", "mysql+pymysql://", 1)
            storage = rdb_storage(engine_url)
        elif url.startswith(JOURNAL):
            storage = JournalStorage(JournalFileBackend(str(path)))
        elif url.startswith("redis://"):
            storage = JournalStorage(JournalRedisBackend(url))
        else:
            raise ValueError("use sqlite:///, postgresql://, mysql://, journal:/// or redis://")
        storage.get_all_studies()
    except Exception as err:  # SQLAlchemy/driver/Redis errors: wrong host, password, scheme...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot open storage {url}: {reason}") from err
    return storage


def rdb_storage(engine_url: str, attempts: int = 5):
    """Optuna's RDB storage with heartbeats, made again when another process was creating the
    same fresh database at the same moment.

    RDBStorage creates its tables by check-then-create (SQLAlchemy's create_all, then the alembic
    revision row), so processes that open a new database together, e.g. the same command started
    on several hosts, lose to the first with 'table ... already exists' or a unique-constraint
    violation (optuna/optuna#3044). Once the winner is done the check finds the tables."""
    import sqlalchemy.exc
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    for attempt in range(1, attempts + 1):
        try:
            return RDBStorage(engine_url, heartbeat_interval=HEARTBEAT_SECONDS,
                              grace_period=2 * HEARTBEAT_SECONDS,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                                  max_retry=MAX_RETRIES))
        except sqlalchemy.exc.DBAPIError as err:
            lost_race = (isinstance(err, sqlalchemy.exc.IntegrityError)
                         or "already exists" in str(err))
            if not lost_race or attempt == attempts:
                raise
            time.sleep(0.2 * attempt)


def make_pruner(name: str, epochs: int, first_rung: int = 1,
                reduction_factor: int = 3) -> optuna.pruners.BasePruner:
    """Pruners over epochs, the trial's resource: Hyperband by default. `first_rung`: the epochs
    before Hyperband's or successive halving's first rung; `reduction_factor`: 1 in how many
    trials a rung keeps (the engine: 1 and 3; bench/compare.py varies both)."""
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=first_rung, max_resource=epochs,
                                              reduction_factor=reduction_factor)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first_rung,
                                                      reduction_factor=reduction_factor)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"unknown pruner {name!r}: use one of {', '.join(PRUNERS)}")


def open_study(storage, name: str, settings: SearchSettings, seed: int | None,
               pruner: str = "hyperband") -> optuna.Study:
    """Create the study, or load it if it exists and was made with the same settings."""
    check_study_name(name)
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                load_if_exists=True, pruner=make_pruner(pruner, settings.epochs))
    # Seeded by the trials so far: a resumed study, or a fresh worker process, must not replay the
    # first samples of the earlier ones (and the same seed still gives the same study).
    offset = len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(seed=None if seed is None else seed + offset,
                                               multivariate=True)
    wanted = asdict(settings)
    recorded = study.user_attrs.get(SETTINGS_ATTR)
    if recorded is None:
        study.set_user_attr(SETTINGS_ATTR, wanted)
    elif recorded != wanted:
        changed = [f"{k}: study has {recorded.get(k)!r}, this run {wanted[k]!r}"
                   for k in wanted if recorded.get(k) != wanted[k] and k != "space"]
        if recorded.get("space") != wanted["space"]:
            changed.append("the search space differs")
        raise UserError(f"study {name!r} exists with other settings ({'; '.join(changed)}); "
                        "use the same settings to resume, or another --study name")
    return study


def check_engine(study: optuna.Study, engine: str) -> None:
    """One study, one search engine ('optuna' or 'keras-tuner/<tuner>'): a resume with another
    would mix two searches in one study."""
    recorded = study.user_attrs.get(ENGINE_ATTR)
    if recorded is None:
        recorded = "optuna" if study.get_trials(deepcopy=False) else engine  # older studies: Optuna
        study.set_user_attr(ENGINE_ATTR, recorded)
    if recorded != engine:
        raise UserError(f"study {study.study_name!r} was searched by {recorded}, this run asks for "
                        f"{engine}; use the same engine to resume, or another --study name")


def check_pruning_steps(study: optuna.Study) -> None:
    """Trials report epochs done (1..epochs) as their pruning step; vggsearch before 2026-11-24
    reported Keras's epoch index (0..epochs-1), and a resume would have the pruner compare one
    epoch of new trials with two of old ones."""
    if any(0 in t.intermediate_values for t in study.get_trials(deepcopy=False)):
        raise UserError(f"study {study.study_name!r} was made by an older vggsearch that counted "
                        "pruning steps from 0, so its search cannot be resumed (retrain, report "
                        "and export still work): search under another --study name")


def load_study(storage, name: str) -> tuple[optuna.Study, SearchSettings]:
    """An existing study made by vggsearch, and its settings."""
    check_study_name(name)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        raise UserError(f"no study {name!r} in this storage (it has: {', '.join(names) or 'none'})") from None
    settings = study.user_attrs.get(SETTINGS_ATTR)
    if settings is None:
        raise UserError(f"study {name!r} was not made by vggsearch (no recorded settings)")
    return study, SearchSettings(**settings)


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def trial_counts(study: optuna.Study) -> dict:
    """Trials by state: {'running': 0, 'complete': 12, 'pruned': 7, 'fail': 1, 'waiting': 0}."""
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return {s.name.lower(): states.count(s) for s in TrialState}


def rank_key(trial: optuna.trial.FrozenTrial) -> tuple:
    """Sorts trials best first. A 600-image validation set scores accuracy in steps of 1/600, so
    trials tie often, and Optuna's own best_trial takes the first of a tie; the validation loss
    at the best epoch separates them (a trial without one, from an older study, comes last)."""
    return -trial.value, trial.user_attrs.get("best_val_loss", float("inf"))


def ranked_trials(study: optuna.Study, states=(TrialState.COMPLETE,)) -> list:
    """The trials in `states` that have a value, best first."""
    return sorted((t for t in study.get_trials(deepcopy=False, states=states)
                   if t.value is not None), key=rank_key)


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    ranked = ranked_trials(study)
    if not ranked:
        raise UserError(f"study {study.study_name!r} has no completed trial yet")
    return ranked[0]
