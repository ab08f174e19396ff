"""The storages a study can live in, each with a real server or file: SQLite, PostgreSQL
(127.0.0.1:5432, database test), a journal file and a Redis journal (127.0.0.1:6379); and the
heartbeat that fails a dead worker's trial and queues it again."""
import io
import logging
import subprocess
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager

import optuna
import pytest

import search.study
from conftest import ROOT, storage_url
from search import heartbeat
from search.errors import UserError
from search.errors import SurplusTrial
from search.pipeline import optimize
from search.progress import new_progress
from search.shared_study import (check_not_surplus, claim_name, record_retrained,
                                 retrain_claim)
from search.study import connect


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mysql", "journal", "redis"])
def test_a_study_lives_in_every_storage(kind, tmp_path):
    url = storage_url(kind, tmp_path)
    name = f"storage-test-{uuid.uuid4().hex[:8]}"  # servers are shared: a name of its own
    study = optuna.create_study(study_name=name, storage=connect(url), direction="maximize")
    try:
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        again = optuna.load_study(study_name=name, storage=connect(url))
        assert [t.state.name for t in again.trials] == ["COMPLETE"] * 3
        assert again.best_value == study.best_value
    finally:
        optuna.delete_study(study_name=name, storage=connect(url))


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "postgresql://nobody@127.0.0.1:1/x",
                                 "ftp://example.org/study"])
def test_an_unreachable_or_unknown_storage_is_one_clear_error(url):
    with pytest.raises(UserError, match="cannot open storage"):
        connect(url)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mysql"])
def test_processes_opening_a_new_database_together_all_open_it(kind, tmp_path):
    """Optuna creates its tables check-then-create: before connect() made the storage again,
    all but one of the processes opening a new database together failed ('table ... already
    exists', a unique violation), in every run of this test on each of the three (3 runs each)."""
    with new_databases(kind, tmp_path, count=2) as urls:
        run = subprocess.run([sys.executable, str(ROOT / "tests" / "open_together.py"), "4", *urls],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert run.stdout == ""  # every process opened every database


@contextmanager
def new_databases(kind, tmp_path, count):
    """`count` URLs of databases nobody has opened: files, or databases made on the server and
    dropped afterwards."""
    if kind == "sqlite":
        yield [f"sqlite:///{tmp_path / f'new{i}.db'}" for i in range(count)]
        return
    import sqlalchemy

    server = storage_url(kind, tmp_path)  # the server's test database, to create the others
    admin = sqlalchemy.create_engine(server.replace("mysql://", "mysql+pymysql://", 1),
                                     isolation_level="AUTOCOMMIT")
    names = [f"vggsearch_new_{uuid.uuid4().hex[:8]}" for _ in range(count)]
    with admin.connect() as connection:
        for name in names:
            connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    try:
        yield [f"{server.rsplit('/', 1)[0]}/{name}" for name in names]
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(sqlalchemy.text(f"DROP DATABASE {name}"))
        admin.dispose()


def test_a_dead_workers_trial_is_failed_and_queued_again(tmp_path, monkeypatch):
    monkeypatch.setattr(search.study, "HEARTBEAT_SECONDS", 1)  # grace period: 2 s
    study = optuna.create_study(storage=connect(f"sqlite:///{tmp_path / 'v.db'}"))
    dead = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study._storage.record_heartbeat(dead._trial_id)  # its worker beat once, then was killed
    time.sleep(3)
    assert heartbeat.fail_stale_trials(study) == [dead.number]  # Optuna's heartbeat, checked now
    trials = study.get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["FAIL", "WAITING"]
    assert trials[1].params == {"x": dead.params["x"]}
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trials[1]) == 0


def test_a_dead_workers_trial_on_a_journal_is_failed_and_queued_again(tmp_path, monkeypatch):
    """Journals have no heartbeat of Optuna's: vggsearch's own (search.heartbeat)."""
    monkeypatch.setattr(search.study, "HEARTBEAT_SECONDS", 1)  # grace period: 2 s
    study = optuna.create_study(storage=connect(f"journal:///{tmp_path / 'v.journal'}"))
    x = optuna.distributions.FloatDistribution(0, 1)
    dead, alive = study.ask({"x": x}), study.ask({"x": x})
    with heartbeat.beating(alive):  # a live worker keeps stamping its trial
        with heartbeat.beating(dead):
            pass  # ... this one stamped once, then its worker was killed
        time.sleep(3)
        assert heartbeat.fail_stale_trials(study) == [dead.number]
        assert heartbeat.fail_stale_trials(study) == []  # a second worker finds nothing to do
    trials = study.get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["FAIL", "RUNNING", "WAITING"]
    assert trials[2].params == {"x": dead.params["x"]}
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trials[2]) == 0


def test_a_worker_whose_trial_was_failed_under_it_goes_on(tmp_path, monkeypatch, capfd):
    """A live worker's heartbeats can come late (a worker killed while it held the journal's lock
    holds every writer up to Optuna's 30 s): another worker then fails its trial as stale and
    queues it again. The late worker drops that trial and runs the next one instead of dying of
    Optuna's 'Cannot tell a FAIL trial' (optuna/optuna#5470)."""
    monkeypatch.setattr(search.study, "HEARTBEAT_SECONDS", 1)  # grace period: 2 s
    study = optuna.create_study(storage=connect(f"journal:///{tmp_path / 'v.journal'}"),
                                direction="maximize")

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        if trial.number == 0:  # this worker's first trial stalls past the grace period...
            time.sleep(2.5)
            assert heartbeat.fail_stale_trials(study) == [0]  # ... and another worker fails it
            trial.report(x, 0)
        return x

    optuna_log = io.StringIO()  # Optuna's handler kept the stderr of its import: not capfd's
    for handler in logging.getLogger("optuna").handlers:
        if type(handler) is logging.StreamHandler:  # Optuna's; pytest adds subclasses
            monkeypatch.setattr(handler, "stream", optuna_log)
    with new_progress() as progress:
        optimize(study, objective, 2, progress)
    trials = study.get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trials[1]) == 0
    assert "trial 0: failed as stale by another worker" in capfd.readouterr().err
    assert "Traceback" not in optuna_log.getvalue()


def test_a_trial_started_when_the_target_was_running_is_not_run(tmp_path):
    """Two workers started the study's last trial in the same instant: the later one steps back."""
    study = optuna.create_study(storage=connect(f"journal:///{tmp_path / 'v.journal'}"))
    done = study.ask()
    study.tell(done, 0.5)
    last, racer = study.ask(), study.ask()  # target 2: one finished, two started together
    check_not_surplus(last, 2)
    with pytest.raises(SurplusTrial, match="make the study's target of 2"):
        check_not_surplus(racer, 2)
    assert "not_run" in study.trials[racer.number].user_attrs
    study.tell(racer, state=optuna.trial.TrialState.FAIL)  # what study.optimize does with it
    study.tell(last, state=optuna.trial.TrialState.FAIL)  # had the last one died instead ...
    check_not_surplus(study.ask(), 2)  # ... a trial started now would run


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "journal", "redis"])
def test_one_of_the_commands_sharing_a_study_retrains(kind, tmp_path):
    """Three commands reach the end of one study at the same instant: the storage lets exactly one
    claim the retrain; one arriving later does not retrain the same trials again; a claim left by
    a dead process is taken over."""
    url, name = storage_url(kind, tmp_path), f"claim-test-{uuid.uuid4().hex[:8]}"
    optuna.create_study(study_name=name, storage=connect(url)).optimize(lambda t: 0.5, n_trials=2)
    start, outcomes = threading.Barrier(3), []

    def command():
        study = optuna.load_study(study_name=name, storage=connect(url))  # a connection of its own
        start.wait()
        with retrain_claim(study) as ours:
            if ours:
                time.sleep(1)  # retraining
                record_retrained(study)
            outcomes.append(ours)

    try:
        threads = [threading.Thread(target=command) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(outcomes) == [False, False, True]
        study = optuna.load_study(study_name=name, storage=connect(url))
        assert claim_name(name) not in optuna.get_all_study_names(study._storage)  # released
        with retrain_claim(study) as ours:  # later, with the same finished trials
            assert not ours

        study.optimize(lambda t: 0.5, n_trials=1)  # one more finished trial: worth retraining
        gone = _dead_pid()
        claim = optuna.create_study(study_name=claim_name(name), storage=study._storage)
        claim.set_user_attr("holder", {"host": socket.gethostname(), "pid": gone})  # killed
        with retrain_claim(study) as ours:
            assert ours
    finally:
        for study_name in (name, claim_name(name)):
            if study_name in optuna.get_all_study_names(connect(url)):
                optuna.delete_study(study_name=study_name, storage=connect(url))


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
