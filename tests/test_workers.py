"""Several worker processes on one study: `search --workers K` on a journal file (the study's
target is the total, trials are not repeated, both workers take part, the report is written once),
and three commands on one study in each shared storage, one of them killed mid-trial."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from conftest import ROOT, TINY_SPACE, run_cli, storage_url
from search.study import connect

TRIALS = 4
KILLED_STUDY_TRIALS = 6  # enough rounds after the kill for a survivor to find the stale trial


def test_two_workers_share_one_study_on_a_journal_file(studies):
    journal = f"journal:///{studies / 'vggsearch.journal'}"
    done = run_cli("search", "--dataset", "digits", "--subset", "200", "--trials", TRIALS,
                   "--epochs", "1", "--pruner", "none", "--weights", "none", "--seed", "5",
                   "--space", TINY_SPACE, "--workers", "2", "--retrain-epochs", "1",
                   "--storage", journal, "--studies-dir", studies)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="digits", storage=connect(journal)).trials
    finished = [t for t in trials if t.state.name == "COMPLETE"]
    # MaxTrialsCallback stops both at the target; a trial already in flight may finish past it.
    assert TRIALS <= len(finished) <= TRIALS + 1, [t.state.name for t in trials]
    assert len({t.number for t in trials}) == len(trials)
    assert {t.user_attrs["worker"] for t in finished} == {0, 1}
    assert len({tuple(sorted(t.params.items())) for t in finished}) == len(finished)
    assert done.stderr.count("test accuracy") == 1  # retrained and reported once
    assert json.loads((studies / "digits" / "report.json").read_text())["test"]["n_test"] == 360


def worker_pid(command_pid: int) -> int | None:
    """The trials' worker process a `cli.py search` process started (Linux's /proc)."""
    children = Path(f"/proc/{command_pid}/task/{command_pid}/children")
    pids = children.read_text().split() if children.exists() else []
    return int(pids[0]) if pids else None


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds workers in Linux's /proc")
@pytest.mark.parametrize("kind", ["journal", "postgresql", "redis"])
def test_a_killed_worker_loses_nothing(kind, studies, tmp_path):
    """Three commands on one study, as on three hosts; one host dies (SIGKILL) mid-trial. Its trial
    is failed after the heartbeat's grace period and run again by another worker."""
    url, name = storage_url(kind, tmp_path), f"killed-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, str(ROOT / "cli.py"), "search", "--dataset", "digits", "--subset",
               "200", "--trials", str(KILLED_STUDY_TRIALS), "--epochs", "2", "--pruner", "none",
               "--weights", "none", "--space", str(TINY_SPACE), "--study", name, "--storage", url,
               "--studies-dir", str(studies), "--retrain-epochs", "1"]
    env = {**os.environ, "VGGSEARCH_HEARTBEAT_SECONDS": "1"}  # grace period: 2 s
    logs = [tmp_path / f"host{i}.log" for i in range(3)]
    hosts = [subprocess.Popen([*command, "--seed", str(i), *(["--no-retrain"] if i else [])],
                              cwd=ROOT, env=env, stderr=logs[i].open("w"))
             for i in range(3)]
    try:
        victim, pid = _kill_a_host_mid_trial(hosts[2], name, url)
        for host in hosts[:2]:
            host.wait(timeout=300)
        outputs = [log.read_text() for log in logs[:2]]
        assert [host.returncode for host in hosts[:2]] == [0, 0], outputs
        trials = optuna.load_study(study_name=name, storage=connect(url)).trials
        by_number = {t.number: t for t in trials}
        assert len(by_number) == len(trials)  # no duplicate trial numbers
        assert by_number[victim].state == TrialState.FAIL
        retried = [t for t in trials
                   if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == victim]
        assert retried and retried[0].state == TrialState.COMPLETE
        assert retried[0].user_attrs["pid"] != pid  # run again by another worker
        finished = [t for t in trials if t.state == TrialState.COMPLETE]
        # + a trial in flight when the target was reached
        assert KILLED_STUDY_TRIALS <= len(finished) <= KILLED_STUDY_TRIALS + 1
        assert sum("test accuracy" in out for out in outputs) == 1  # one report
    finally:
        for host in hosts:
            host.kill()
            host.wait()
        optuna.delete_study(study_name=name, storage=connect(url))


def _kill_a_host_mid_trial(host, name: str, url: str) -> tuple[int, int]:
    """SIGKILL `host`'s worker and `host` while the worker runs a trial: (trial number, pid)."""
    deadline = time.time() + 240
    while time.time() < deadline:
        time.sleep(0.5)
        pid = worker_pid(host.pid)
        try:
            running = optuna.load_study(study_name=name, storage=connect(url)).get_trials(
                deepcopy=False, states=(TrialState.RUNNING,))
        except KeyError:  # the study is not created yet
            continue
        victim = next((t.number for t in running if pid and t.user_attrs.get("pid") == pid), None)
        if victim is not None:
            os.kill(pid, signal.SIGKILL)  # the worker and its command: the whole host is gone
            host.kill()
            return victim, pid
    raise AssertionError("the third host never ran a trial")
