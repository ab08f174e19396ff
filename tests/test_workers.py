"""Several worker processes on one study (`search --workers K` on a journal file): the study's
target is the total, trials are not repeated, both workers take part, the report is written once."""
import json

import optuna

from conftest import TINY_SPACE, run_cli
from search.study import connect

TRIALS = 4


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
