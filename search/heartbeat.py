"""Heartbeats for Optuna's journal storages, which (unlike the RDB ones) have none: a trial whose
worker was killed would stay RUNNING for ever and the study would never reach its target.

While a trial runs, a thread stamps it (user attribute `heartbeat`, a Unix time) every
HEARTBEAT_SECONDS. Before each trial, a worker fails the RUNNING trials whose stamp is older than
the grace period and queues each again with Optuna's own `RetryHeartbeatStaleTrialCallback`, as
the RDB storages do. Two workers racing to fail the same trial cannot both succeed: the storage
refuses to change a finished trial, and only the winner re-queues it.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import optuna
from optuna.storages import JournalStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from search import study as study_module

ATTR = "heartbeat"


def needed(study: optuna.Study) -> bool:
    return isinstance(study._storage, JournalStorage)


@contextmanager
def beating(trial: optuna.Trial):
    """Stamp `trial` now and every HEARTBEAT_SECONDS until the block ends (journal storages)."""
    if not needed(trial.study):
        yield
        return
    stop = threading.Event()

    def beat():
        while True:
            try:
                trial.storage.set_trial_user_attr(trial._trial_id, ATTR, time.time())
            except optuna.exceptions.UpdateFinishedTrialError:  # failed as stale meanwhile
                return
            if stop.wait(study_module.HEARTBEAT_SECONDS):
                return

    thread = threading.Thread(target=beat, name="vggsearch-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fail_stale_trials(study: optuna.Study) -> list[int]:
    """Fail and re-queue the RUNNING trials whose heartbeat stopped; returns their numbers."""
    if not needed(study):  # RDB storages: Optuna's heartbeat, checked now rather than at a trial
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if running:
            optuna.storages.fail_stale_trials(study)
        return [t.number for t in running
                if study._storage.get_trial(t._trial_id).state == TrialState.FAIL]
    grace = 2 * study_module.HEARTBEAT_SECONDS
    retry = RetryHeartbeatStaleTrialCallback(max_retry=study_module.MAX_RETRIES)
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        last = trial.user_attrs.get(ATTR, trial.datetime_start.timestamp())
        if time.time() - last < grace:
            continue
        try:
            if not study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker got there first
            continue
        retry(study, study._storage.get_trial(trial._trial_id))
        failed.append(trial.number)
    return failed
