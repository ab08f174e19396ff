"""Memory stays bounded over many trials: TensorFlow keeps memory of every model a process has
trained, so the trials run in a worker process that is replaced when it passes a limit."""
import pytest

from conftest import TINY_SPACE, run_cli, study_trials
from search.memory import anon_rss_mb

N_TRIALS = 15
LIMIT_MB = 1000  # low, so that this small study needs several workers
ONE_TRIAL_MB = 300  # what one small trial may add on top of the limit (measured: up to 233)
# RSS after the last trial may exceed RSS after the third by at most this; in one process the 12
# trials between them would add 12 x 70..90 MB (see search.worker).
GROWTH_BOUND_MB = 500


@pytest.mark.skipif(anon_rss_mb() is None, reason="RssAnon is read from Linux's /proc")
def test_memory_is_bounded_over_many_trials(studies):
    done = run_cli("search", "--dataset", "digits", "--subset", "200", "--trials", N_TRIALS,
                   "--epochs", "1", "--pruner", "none", "--weights", "none", "--seed", "3",
                   "--space", TINY_SPACE, "--no-retrain", "--worker-memory-mb", LIMIT_MB,
                   "--studies-dir", studies)
    assert done.returncode == 0, done.stderr
    assert "continuing in a fresh worker process" in done.stderr
    trials = sorted(study_trials(studies, "digits"), key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE"] * N_TRIALS
    rss = [t.user_attrs["rss_mb"] for t in trials]  # each trial's worker, at the trial's end
    # In one process these grew by 70 to 90 MB a trial without bound (see search.worker).
    assert max(rss) <= LIMIT_MB + ONE_TRIAL_MB, rss
    assert rss[-1] <= rss[2] + GROWTH_BOUND_MB, rss
    print("worker RSS after each trial (MB):", [round(r) for r in rss])
    # A fresh worker continues the sampler's stream: no configuration is drawn twice.
    assert len({tuple(sorted(t.params.items())) for t in trials}) == N_TRIALS
