"""Ctrl-C in the middle of a study, then the same command again: nothing lost, nothing repeated."""
import signal
import subprocess
import sys
import time

from conftest import ROOT, TINY_SPACE, study_trials


def finished(studies):
    try:
        return [t for t in study_trials(studies, "digits") if t.state.name in ("COMPLETE", "PRUNED")]
    except Exception:  # the study does not exist yet
        return []


def test_interrupted_study_resumes_to_the_target(studies):
    command = [sys.executable, str(ROOT / "cli.py"), "search", "--dataset", "digits", "--subset",
               "300", "--space", str(TINY_SPACE), "--weights", "none", "--epochs", "3",
               "--trials", "5", "--no-retrain", "--seed", "3", "--studies-dir", str(studies)]
    worker = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not finished(studies) and worker.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    worker.send_signal(signal.SIGINT)  # Ctrl-C, mid-way through the second trial or so
    _, stderr = worker.communicate(timeout=120)
    assert worker.returncode == 130, stderr
    assert "run the same command to resume" in stderr and "Traceback" not in stderr
    assert "failed" not in stderr  # Optuna's log of the interrupted trial is not the user's news
    before = len(finished(studies))
    assert 1 <= before < 5

    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{before} finished trials, running {5 - before} more" in done.stderr
    trials = study_trials(studies, "digits")
    assert len(finished(studies)) == 5
    assert len({t.number for t in trials}) == len(trials)
    assert all(t.state.name in ("COMPLETE", "PRUNED", "FAIL") for t in trials)  # none left RUNNING
