"""KerasTuner as the search engine: the space file translated to its HyperParameters, a study on
`digits` recorded in the Optuna storage and retrained like any other, and a resume."""
import json

import keras_tuner
import optuna
import pytest
from optuna.trial import TrialState

from cli import main
from conftest import TINY_SPACE, WEIGHTS, study_trials
from search.errors import UserError
from search.pipeline import run_search
from search.space import Space
from search.tuner import TRIAL_ATTR

EVERY_TYPE = {
    "head_units": {"type": "categorical", "choices": [32, 64, 128]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
    "unfrozen_blocks": {"type": "int", "low": 0, "high": 4, "step": 2},
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
    "batch_size": {"type": "int", "low": 16, "high": 128, "log": True},
    "augment_strength": {"type": "categorical", "choices": [0, 0.25, 0.5]},  # int and floats
}


def test_every_parameter_type_translates_to_keras_tuner():
    space = Space.from_dict(EVERY_TYPE)
    hp = keras_tuner.HyperParameters()
    space.declare(hp)
    declared = {p.name: p for p in hp.space}
    assert list(declared) == list(EVERY_TYPE)
    assert declared["head_units"].values == [32, 64, 128]
    assert declared["augment_strength"].values == [0.0, 0.25, 0.5]
    dropout = declared["dropout"]
    assert (dropout.min_value, dropout.max_value, dropout.step, dropout.sampling) == (
        0.0, 0.5, 0.1, "linear")
    blocks = declared["unfrozen_blocks"]
    assert (blocks.min_value, blocks.max_value, blocks.step) == (0, 4, 2)
    assert declared["learning_rate"].sampling == "log"
    assert declared["batch_size"].sampling == "log"

    # Whatever KerasTuner draws is a valid Optuna trial of the same space.
    oracle = keras_tuner.oracles.RandomSearchOracle(max_trials=30, seed=0, hyperparameters=hp)
    distributions = space.distributions()
    for _ in range(30):
        values = oracle.populate_space("x")["values"]
        trial = optuna.trial.create_trial(params=values, distributions=distributions, value=0.5)
        assert trial.params == values
        assert values["unfrozen_blocks"] in (0, 2, 4) and 16 <= values["batch_size"] <= 128


def search_digits(studies, trials: int, **options) -> dict:
    """A small digits study in this process (real weights where present, random otherwise)."""
    return run_search("digits", trials=trials, subset=300, epochs=3, space=TINY_SPACE, seed=0,
                      weights=str(WEIGHTS) if WEIGHTS.is_file() else "none", studies_dir=studies,
                      separate_process=False, **options)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A 4-trial KerasTuner Hyperband study on digits, retrained (briefly: not under test here)."""
    studies = tmp_path_factory.mktemp("keras_tuner") / "studies"
    search_digits(studies, 4, keras_tuner="hyperband", retrain_epochs=1, retrain_subset=300)
    return studies


def test_keras_tuner_trials_are_recorded_in_the_optuna_study(tuned):
    trials = study_trials(tuned, "digits")
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4 and len({t.user_attrs[TRIAL_ATTR] for t in trials}) == len(trials)
    for t in finished:
        assert set(t.params) == set(Space.from_file(TINY_SPACE).params)
        assert t.intermediate_values and t.user_attrs["engine"] == "keras-tuner"
        assert t.user_attrs["epochs_run"] == len(t.intermediate_values)
    # Hyperband with 3 epochs: rounds of 1 epoch (recorded as pruned), then of 3.
    assert any(t.state == TrialState.PRUNED and "Hyperband round of 1 epochs"
               in t.user_attrs["pruned_reason"] for t in finished)
    assert (tuned / "digits" / "keras_tuner" / "hyperband" / "oracle.json").is_file()

    report = json.loads((tuned / "digits" / "report.json").read_text())
    best = max((t for t in finished if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert report["best_trial"]["number"] == best.number and report["test"]["n_test"] == 360


def test_report_and_export_work_on_a_keras_tuner_study(tuned, tmp_path, capsys):
    assert main(["report", "--study", "digits", "--html", str(tmp_path / "r.html"),
                 "--studies-dir", str(tuned)]) == 0
    assert main(["export", "--study", "digits", "--format", "keras", "--out",
                 str(tmp_path / "d.keras"), "--studies-dir", str(tuned)]) == 0
    assert (tmp_path / "d.keras").is_file() and "Optimization History" in (
        tmp_path / "r.html").read_text()


def test_keras_tuner_study_resumes_and_keeps_its_engine(tuned):
    before = study_trials(tuned, "digits")
    search_digits(tuned, 5, keras_tuner="hyperband", do_retrain=False)
    after = study_trials(tuned, "digits")
    assert len(after) == len(before) + 1  # one more trial, nothing repeated
    assert len({t.user_attrs[TRIAL_ATTR] for t in after}) == len(after)
    with pytest.raises(UserError, match="searched by keras-tuner/hyperband"):
        search_digits(tuned, 6, do_retrain=False)
