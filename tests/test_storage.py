"""The storages a study can live in, each with a real server or file: SQLite, PostgreSQL
(127.0.0.1:5432, database test), a journal file and a Redis journal (127.0.0.1:6379); and the
heartbeat that fails a dead worker's trial and queues it again."""
import time
import uuid

import optuna
import pytest

import search.study
from conftest import storage_url
from search import heartbeat
from search.errors import UserError
from search.study import connect


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "journal", "redis"])
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


def test_a_dead_workers_trial_is_failed_and_queued_again(tmp_path, monkeypatch):
    monkeypatch.setattr(search.study, "HEARTBEAT_SECONDS", 1)  # grace period: 2 s
    study = optuna.create_study(storage=connect(f"sqlite:///{tmp_path / 'v.db'}"))
    dead = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study._storage.record_heartbeat(dead._trial_id)  # its worker beat once, then was killed
    time.sleep(3)
    optuna.storages.fail_stale_trials(study)  # what every worker does before its next trial
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
