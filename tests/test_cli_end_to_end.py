"""A user's session on `digits` with the real VGG16 weights: search with pruning, retrain, the
files it writes and what the dashboard shows (note, artifacts; in a real browser), then report,
list, export and a resume that runs only what is missing."""
import json
import subprocess
import sys
import time

import keras
import numpy as np
import optuna
import pytest
from optuna.artifacts import get_all_artifact_meta
from optuna_dashboard import get_note

from browser import chromium, console_errors, page_text
from conftest import (ROOT, TINY_SPACE, WEIGHTS, free_port, require, run_cli, serving_dashboard,
                      studies_served, study_trials)


SEARCH = ["search", "--dataset", "digits", "--subset", "400", "--space", TINY_SPACE, "--epochs",
          "4", "--pruner", "median", "--seed", "1"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A 6-trial search with pruning and its retrain (one epoch on every training image), with
    the real weights, serving optuna-dashboard while it runs: its studies folder, its stderr, and
    the study names the dashboard listed during the search."""
    studies = tmp_path_factory.mktemp("end_to_end") / "studies"
    port = free_port()
    search = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), *map(str, SEARCH), "--trials", "6", "--weights",
         str(require(WEIGHTS)), "--retrain-epochs", "1", "--dashboard", "--dashboard-port",
         str(port), "--studies-dir", str(studies)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    served = studies_served(port, time.time() + 120, search)
    _, stderr = search.communicate(timeout=900)
    assert search.returncode == 0, stderr
    assert stderr.index(f"http://127.0.0.1:{port}/") < stderr.index("running 6 more")
    return studies, stderr, served


def test_search_serves_the_dashboard_while_it_runs(searched):
    _, _, served = searched
    assert served is not None and served in ([], ["digits"]), served


def test_dashboard_shows_the_study_in_chromium(searched, tmp_path):
    """optuna-dashboard in a real browser: the study, its trials (one pruned) and the note."""
    studies, _, _ = searched
    trials = study_trials(studies, "digits")
    with serving_dashboard("--studies-dir", studies) as (port, server):
        assert studies_served(port, time.time() + 60, server) == ["digits"]
        study_url = f"http://127.0.0.1:{port}/dashboard/studies/1"
        with chromium() as browser:
            listed = page_text(browser, f"{study_url}/trials", f"{len(trials)} Trials")
            browser.save_screenshot(str(tmp_path / "trials.png"))
            note = page_text(browser, f"{study_url}/note", "Test set (360 images)")
            browser.save_screenshot(str(tmp_path / "note.png"))
            errors = console_errors(browser)
    assert "digits" in listed and "Pruned" in listed and "Complete" in listed
    assert "precision" in note
    assert errors == [], errors


def test_search_retrain_report_export_resume(searched):
    studies, stderr, _ = searched
    assert "running 6 more" in stderr and "test accuracy" in stderr

    states = [t.state.name for t in study_trials(studies, "digits")]
    assert states.count("COMPLETE") + states.count("PRUNED") == 6
    assert "PRUNED" in states, states
    for t in study_trials(studies, "digits"):  # reported at epochs done, 1 to epochs_run
        if t.state.name in ("COMPLETE", "PRUNED"):
            assert sorted(t.intermediate_values) == list(range(1, t.user_attrs["epochs_run"] + 1))
        if t.state.name == "COMPLETE":  # its validation loss ranks trials of equal accuracy
            assert t.user_attrs["best_val_loss"] > 0

    out = studies / "digits"
    for name in ["preview.png", "report.json", "report.md", "learning_curves.png",
                 "confusion_matrix.png",
                 "sample_predictions.png", "model.keras", "model.keras.json"]:
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    assert report["test"]["n_test"] == 360  # scikit-learn digits: the fixed 20 % test split
    assert report["test"]["test_accuracy"] > 0.5  # 10 classes: far above chance
    assert report["retrain"]["images"] == 1437  # all of digits' training images, not the 400
    # --confirm 2 by default: the best two configurations rerun, the better mean retrained
    confirmed = [row["trial"] for row in report["confirmation"]]
    assert len(confirmed) == 2 and report["best_trial"]["number"] in confirmed
    assert report["retrain"]["trial"] == confirmed[0]
    assert report["trials"]["pruned"] >= 1
    assert "precision" in (out / "report.md").read_text()

    # optuna-dashboard shows the report as the study's note and the best trial's files.
    study = optuna.load_study(study_name="digits", storage=f"sqlite:///{studies / 'vggsearch.db'}")
    note = get_note(study)
    assert "Test set (360 images)" in note and "precision" in note and "![" not in note
    attached = {m.filename for m in get_all_artifact_meta(study)}
    assert {"model.keras", "report.json", "confusion_matrix.png"} <= attached, attached

    # The saved model is the whole network: VGG16 inputs -> probabilities over the 10 classes.
    model = keras.models.load_model(out / "model.keras")
    probs = model.predict(np.zeros((2, 32, 32, 3), np.float32), verbose=0)
    assert probs.shape == (2, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)

    shown = run_cli("report", "--study", "digits", "--studies-dir", studies)
    assert shown.returncode == 0 and "top" in shown.stderr and "test accuracy" in shown.stderr
    listed = run_cli("list", "--studies-dir", studies)
    assert listed.returncode == 0 and "digits" in listed.stderr
    exported = run_cli("export", "--study", "digits", "--format", "keras", "--out",
                       studies / "best.keras", "--studies-dir", studies)
    assert exported.returncode == 0, exported.stderr
    assert (studies / "best.keras").is_file() and (studies / "best.keras.json").is_file()

    # Re-running resumes: the same target runs nothing, a higher one runs only the difference.
    again = run_cli(*SEARCH, "--trials", "7", "--weights", WEIGHTS, "--no-retrain",
                    "--studies-dir", studies)
    assert again.returncode == 0, again.stderr
    assert "6 finished trials, running 1 more" in again.stderr
    states = [t.state.name for t in study_trials(studies, "digits")]
    assert states.count("COMPLETE") + states.count("PRUNED") == 7

    # The best trial can be retrained again later, with other settings of the retrain.
    (out / "report.json").unlink()
    later = run_cli("retrain", "--study", "digits", "--retrain-epochs", "3", "--retrain-subset",
                    "400", "--studies-dir", studies)
    assert later.returncode == 0, later.stderr
    retrained = json.loads((out / "report.json").read_text())["retrain"]
    assert (retrained["epochs"], retrained["images"]) == (3, 400)
    # The learning rate warms up from 0 over the first epoch (400 images < WARMUP_IMAGES), then
    # anneals along a cosine over the other two: halfway, at the third epoch's start, half of it.
    rate = retrained["params"]["learning_rate"]
    assert [e["learning_rate"] for e in retrained["history"]] == pytest.approx([0, rate, rate / 2])
