"""Three worker processes on one study in each shared storage (a journal file, PostgreSQL,
Redis): `search --workers 2` on one host and a single worker on another, which is killed, while
optuna-dashboard reads the study."""
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

from conftest import (ROOT, TINY_SPACE, reading, serving_dashboard, storage_url,
                      studies_served)
from search.study import connect
from search.worker import visible_gpus

TRIALS = 6  # enough rounds after the kill for a survivor to find the stale trial


def child_pids(command_pid: int) -> set[int]:
    """The processes a `cli.py search` process started: its trials' worker among them (Linux's
    /proc; multiprocessing's resource tracker is another)."""
    children = Path(f"/proc/{command_pid}/task/{command_pid}/children")
    return set(map(int, children.read_text().split())) if children.exists() else set()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds workers in Linux's /proc")
@pytest.mark.parametrize("kind", ["journal", "postgresql", "redis"])
def test_a_killed_worker_loses_nothing(kind, studies, tmp_path):
    """Two hosts on one study: `--workers 2` on the first, one worker on the second; the second
    dies (SIGKILL) mid-trial. Its trial is failed after the heartbeat's grace period and run again
    by another worker; the study reaches exactly its target; the first host retrains, once. A
    dashboard reading the study all along answers every request."""
    url, name = storage_url(kind, tmp_path), f"killed-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, str(ROOT / "cli.py"), "search", "--dataset", "digits", "--subset",
               "200", "--trials", str(TRIALS), "--epochs", "1", "--pruner", "none", "--weights",
               "none", "--space", str(TINY_SPACE), "--study", name, "--storage", url,
               "--studies-dir", str(studies), "--retrain-epochs", "1",
               "--retrain-subset", "100"]  # checked: one host retrains, not how well
    env = {**os.environ, "VGGSEARCH_HEARTBEAT_SECONDS": "1"}  # grace period: 2 s
    logs = [tmp_path / f"host{i}.log" for i in range(2)]
    with serving_dashboard("--storage", url) as (port, dashboard):
        assert studies_served(port, time.time() + 60, dashboard) is not None
        hosts = [subprocess.Popen([*command, "--seed", "0", "--workers", "2"], cwd=ROOT, env=env,
                                  stderr=logs[0].open("w")),
                 subprocess.Popen([*command, "--seed", "1"], cwd=ROOT, env=env,
                                  stderr=logs[1].open("w"))]
        with reading(port, every=0.5) as answers:
            try:
                victim, pid = _kill_a_host_mid_trial(hosts[1], name, url)
                hosts[0].wait(timeout=300)
            finally:
                for host in hosts:
                    host.kill()
                    host.wait()
    try:
        assert len(answers) > 10 and all(isinstance(a, list) for a in answers), answers
        assert name in answers[-1]
        assert "Traceback" not in dashboard.output, dashboard.output
        output = logs[0].read_text()
        assert hosts[0].returncode == 0, output
        trials = optuna.load_study(study_name=name, storage=connect(url)).trials
        by_number = {t.number: t for t in trials}
        assert len(by_number) == len(trials)  # no duplicate trial numbers
        assert by_number[victim].state == TrialState.FAIL
        retried = [t for t in trials
                   if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == victim]
        assert retried and retried[0].state == TrialState.COMPLETE
        finished = [t for t in trials if t.state == TrialState.COMPLETE]
        assert len(finished) == TRIALS
        first_host = {t.user_attrs["pid"] for t in finished} - {pid}
        assert len(first_host) == 2  # both of its workers ran trials
        assert output.count("test accuracy") == 1  # retrained and reported once
    finally:
        optuna.delete_study(study_name=name, storage=connect(url))


def _kill_a_host_mid_trial(host, name: str, url: str) -> tuple[int, int]:
    """SIGKILL `host`'s worker and `host` while the worker runs a trial: (trial number, pid)."""
    deadline = time.time() + 240
    while time.time() < deadline:
        time.sleep(0.5)
        pids = child_pids(host.pid)
        try:
            running = optuna.load_study(study_name=name, storage=connect(url)).get_trials(
                deepcopy=False, states=(TrialState.RUNNING,))
        except KeyError:  # the study is not created yet
            continue
        mine = [t for t in running if t.user_attrs.get("pid") in pids]
        if mine:
            pid = mine[0].user_attrs["pid"]
            os.kill(pid, signal.SIGKILL)  # the worker and its command: the whole host is gone
            host.kill()
            return mine[0].number, pid
    raise AssertionError("the third host never ran a trial")


def test_workers_get_the_gpus_cuda_visible_devices_lists(monkeypatch):
    """Round robin over the user's CUDA_VISIBLE_DEVICES (none on a host without GPUs)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 5")
    assert visible_gpus() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
