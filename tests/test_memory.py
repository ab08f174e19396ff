"""Memory stays bounded however many trials run: TensorFlow keeps memory of every model a process
has trained (+70 to +90 MB a trial, see search.worker), so the trials run in a worker process that
is replaced when its memory passes a limit after a trial."""
import pytest

from conftest import TINY_SPACE, run_cli, study_trials
from search.memory import anon_rss_mb

N_TRIALS = 3
LIMIT_MB = 1  # under any worker's memory: every worker hands over after its first trial


@pytest.mark.skipif(anon_rss_mb() is None, reason="RssAnon is read from Linux's /proc")
def test_a_worker_over_the_memory_limit_hands_over_to_a_fresh_one(studies):
    done = run_cli("search", "--dataset", "digits", "--subset", "200", "--trials", N_TRIALS,
                   "--epochs", "1", "--pruner", "none", "--weights", "none", "--seed", "3",
                   "--space", TINY_SPACE, "--no-retrain", "--worker-memory-mb", LIMIT_MB,
                   "--studies-dir", studies)
    assert done.returncode == 0, done.stderr
    # The last worker stops at the target, not at the limit.
    assert done.stderr.count("continuing in a fresh worker process") == N_TRIALS - 1, done.stderr
    trials = sorted(study_trials(studies, "digits"), key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE"] * N_TRIALS
    assert len({t.user_attrs["pid"] for t in trials}) == N_TRIALS  # one worker each
    assert all(t.user_attrs["rss_mb"] > LIMIT_MB for t in trials)  # each measured its memory
    # A fresh worker continues the sampler's stream: no configuration is drawn twice.
    assert len({tuple(sorted(t.params.items())) for t in trials}) == N_TRIALS
