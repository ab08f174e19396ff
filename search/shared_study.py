"""What the processes sharing one study settle through its storage alone (Optuna's distributed
model has no coordinator): when to stop, and which command retrains.

Stopping: a worker starts a trial only while the finished trials and the trials running elsewhere
stay below the target. When those running would reach it, the worker waits for them instead of
starting one more: one of them may belong to a dead worker, failed after the heartbeat's grace
period and queued again, and then the waiting worker runs it. Two workers deciding in the same
instant both start a trial; the one whose trial has the higher number (the storage numbers them
in order) finds the other's running before it and ends its own unrun, as failed with the user
attribute `not_run`. So the study ends with exactly its target of finished trials.

Retraining: one command retrains and reports, the first to claim it. The claim is a study named
`<study>:retrain` (a name vggsearch's studies cannot have, see search.study.STUDY_NAME): every
storage creates a study name once and refuses the second creator, which is how two commands
racing each other are settled. The claim holds the claimer's host and process id and is deleted
once the report is written; the study then records for how many finished trials it was retrained,
so a command arriving later does not retrain the same trials again. A claim whose process is gone
(same host) is taken over.
"""
from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager

import optuna
from optuna.trial import TrialState

from search.errors import SurplusTrial, UserError
from search.heartbeat import fail_stale_trials
from search.progress import console
from search.study import FINISHED, HEARTBEAT_SECONDS, count_finished

RETRAINED_ATTR = "vggsearch_retrained"  # {"finished_trials", "host", "pid", "at"}
HOLDER_ATTR = "holder"  # the claim's: {"host", "pid"}


def requeue_dead_workers_trials(study: optuna.Study) -> None:
    for number in fail_stale_trials(study):
        console.print(f"trial {number}: its worker stopped beating; failed and queued again",
                      style="yellow")


def target_reached(study: optuna.Study, trials: int) -> bool:
    """True when the study has `trials` finished trials; False when this worker should run one
    more. Waits while the trials running elsewhere would reach the target."""
    while True:
        requeue_dead_workers_trials(study)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        finished = sum(s in FINISHED for s in states)
        if finished >= trials:
            return True
        if finished + states.count(TrialState.RUNNING) < trials:
            return False
        time.sleep(min(1.0, HEARTBEAT_SECONDS / 4))


def check_not_surplus(trial: optuna.Trial, trials: int) -> None:
    """Raises SurplusTrial when the trials before this one, finished or running, make the target."""
    before = [t for t in trial.study.get_trials(deepcopy=False)
              if t.number < trial.number and (t.state in FINISHED or t.state == TrialState.RUNNING)]
    if len(before) >= trials:
        reason = (f"not run: the {len(before)} trials before it, finished or running, make the "
                  f"study's target of {trials}")
        trial.set_user_attr("not_run", reason)
        raise SurplusTrial(reason)


def claim_name(study_name: str) -> str:
    return f"{study_name}:retrain"


@contextmanager
def retrain_claim(study: optuna.Study):
    """Yields True when this command should retrain and report the study now, False when another
    command does (or did, for these trials); says which."""
    storage, name = study._storage, claim_name(study.study_name)
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    for _ in range(2):  # a second try after taking over a dead process's claim
        try:
            claim = optuna.create_study(storage=storage, study_name=name)
            break
        except optuna.exceptions.DuplicatedStudyError:
            holder = _holder(storage, name)
            if holder and holder["host"] == me["host"] and not _alive(holder["pid"]):
                _delete(storage, name)
                continue
            who = f"process {holder['pid']} on {holder['host']}" if holder else "another command"
            console.print(f"{who} is retraining study {study.study_name} and writes its report; "
                          f"this command stops here (if that process died: python cli.py retrain "
                          f"--study {study.study_name})")
            yield False
            return
    else:
        raise UserError(f"could not claim the retrain of study {study.study_name}: run python "
                        f"cli.py retrain --study {study.study_name}")
    try:
        claim.set_user_attr(HOLDER_ATTR, me)  # one write: a reader sees all of it or none
        finished = count_finished(study)
        done = optuna.load_study(study_name=study.study_name, storage=storage).user_attrs.get(
            RETRAINED_ATTR)  # read after the claim: a claimer before this one has written it
        if done and done["finished_trials"] >= finished:
            console.print(f"study {study.study_name} was retrained for its {finished} finished "
                          f"trials by process {done['pid']} on {done['host']}; see its report "
                          f"(python cli.py retrain --study {study.study_name} retrains again)")
            yield False
        else:
            yield True
    finally:
        _delete(storage, name)


def record_retrained(study: optuna.Study) -> None:
    """The study was retrained and reported for the finished trials it has now."""
    finished = count_finished(study)
    study.set_user_attr(RETRAINED_ATTR, {"finished_trials": finished, "at": time.time(),
                                         "host": socket.gethostname(), "pid": os.getpid()})


def _holder(storage, name: str) -> dict | None:
    try:
        return optuna.load_study(study_name=name, storage=storage).user_attrs.get(HOLDER_ATTR)
    except KeyError:  # released meanwhile
        return None


def _delete(storage, name: str) -> None:
    try:
        optuna.delete_study(study_name=name, storage=storage)
    except KeyError:  # deleted by a command taking over the same dead claim
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
