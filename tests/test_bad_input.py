"""Every mistake a user can make: one clear line on stderr, exit status 2, no traceback, and a
study that is still intact afterwards."""
import shutil
import sqlite3

import numpy as np
import pytest
from PIL import Image

from cli import build_parser, main, search_options
from conftest import TINY_SPACE, WEIGHTS, require, run_cli, study_trials
from search.errors import UserError
from search.pipeline import run_search

QUICK = ["--subset", "100", "--space", TINY_SPACE, "--weights", "none", "--epochs", "1"]


def write(path, text):
    path.write_text(text)
    return path


def image_folder(root, classes, extra=None):
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((12, 12), 40 * i, np.uint8)).save(root / name / f"{i}.png")
    if extra:
        extra(root)
    return root


SPACE = TINY_SPACE.read_text()
CASES = {
    "unknown dataset": (["--dataset", "imagenet22k"], "unknown dataset"),
    "trials below one": (["--trials", "0"], "--trials must be at least 1"),
    "confirm below zero": (["--confirm", "-1"], "--confirm must be 0 (off)"),
    "imagenet weights offline": (["--weights", "imagenet"], "cannot get the ImageNet weights"),
    "missing weights file": (["--weights", "/nonexistent/vgg16.h5"], "weights file not found"),
    "corrupt weights file": (lambda tmp: ["--weights", write(tmp / "w.h5", "not hdf5")],
                             "not a valid VGG16 .h5 file"),
    "truncated weights file": (
        lambda tmp: ["--weights", _truncated(tmp)], "not a valid VGG16 .h5 file"),
    "space: unknown parameter": (
        lambda tmp: ["--space", write(tmp / "s.toml", SPACE + "\n[momentum]\ntype='float'\n")],
        "unknown parameter(s) momentum"),
    "space: low above high": (
        lambda tmp: ["--space", write(tmp / "s.toml", SPACE.replace("low = 1e-5", "low = 1.0"))],
        "is greater than high"),
    "space: empty choices": (
        lambda tmp: ["--space", write(tmp / "s.toml", SPACE.replace("[32, 64]\n\n[dropout]",
                                                                    "[]\n\n[dropout]"))],
        "choices must be a non-empty list"),
    "space: not TOML": (lambda tmp: ["--space", write(tmp / "s.toml", "[[[")], "not valid TOML"),
    "space: wrong type": (
        lambda tmp: ["--space", write(tmp / "s.toml", SPACE.replace("high = 0.3", "high = 'x'"))],
        "must be numbers"),
    "unreachable storage": (["--storage", "postgresql://nobody@127.0.0.1:1/none"],
                            "cannot open storage"),
    "study name with a path": (["--study", "../x"], "invalid study name"),
    "workers on SQLite": (["--workers", "2"], "give a storage they can share"),
    "corrupt npz": (lambda tmp: ["--dataset", write(tmp / "d.npz", "garbage")],
                    "not a readable .npz file"),
    "folder with one class": (lambda tmp: ["--dataset", image_folder(tmp / "one", ["cat"])],
                              "at least two classes"),
    "folder with an unreadable image": (
        lambda tmp: ["--dataset", image_folder(tmp / "bad", ["cat", "dog"],
                                               lambda r: write(r / "dog" / "x.png", "text"))],
        "not a readable image"),
    "dataset not downloadable offline": (
        lambda tmp: ["--dataset", "mnist"], "place its files at"),
}


def _truncated(tmp):
    data = require(WEIGHTS).read_bytes()
    path = tmp / "truncated.h5"
    path.write_bytes(data[: len(data) // 3])
    return path


# Keras reads KERAS_HOME once, at import: these cases need a process of their own with an empty
# one (nothing cached, no internet); the others run in this process (no TensorFlow start-up each).
OWN_PROCESS = {"imagenet weights offline", "dataset not downloadable offline"}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_status_2(case, tmp_path, studies, capsys):
    args, expected = CASES[case]
    args = args(tmp_path) if callable(args) else args
    command = ["search", "--dataset", "digits", *QUICK, "--studies-dir", studies, *args]
    if case in OWN_PROCESS:
        done = run_cli(*command, env={"KERAS_HOME": str(tmp_path / "empty_keras_home")},
                       timeout=300)
        code, stderr = done.returncode, done.stderr
    else:
        code, stderr = main([str(a) for a in command]), capsys.readouterr().err
    assert code == 2, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], stderr
    if case in OWN_PROCESS:  # all that a new process prints, TensorFlow's start-up included
        assert stderr.splitlines() == errors, stderr


def test_a_bad_precision_is_one_line_and_status_2(studies, monkeypatch, capsys):
    monkeypatch.setenv("VGGSEARCH_PRECISION", "float8")
    code = main([str(a) for a in ["search", "--dataset", "digits", *QUICK, "--studies-dir",
                                  studies]])
    stderr = capsys.readouterr().err
    assert code == 2 and "Traceback" not in stderr
    assert stderr.startswith("error: VGGSEARCH_PRECISION must be one of auto, float32"), stderr


# A search with QUICK's settings that retrains nothing; the tests add --trials and more.
SEARCH = ["search", "--dataset", "digits", *QUICK, "--no-retrain"]


def one_trial_study(studies):
    """The study `SEARCH --trials 1` makes, made in this process (its trial too: no worker process
    to start) from the same options the CLI parses; returns its trials."""
    args = build_parser().parse_args([str(a) for a in [*SEARCH, "--trials", 1,
                                                       "--studies-dir", studies]])
    run_search(args.dataset, args.trials, separate_process=False, **search_options(args))
    return study_trials(studies, "digits")


def search_again(studies, capsys, *args):
    """`SEARCH args` on that study, in this process: (exit status, stderr)."""
    capsys.readouterr()  # the first search's output
    code = main([str(a) for a in [*SEARCH, "--studies-dir", studies, *args]])
    return code, capsys.readouterr().err


def test_other_settings_are_refused_and_the_study_is_intact(studies, capsys):
    before = [(t.number, t.state) for t in one_trial_study(studies)]
    code, stderr = search_again(studies, capsys, "--trials", "2", "--image-size", "48")
    assert code == 2 and "Traceback" not in stderr
    assert "exists with other settings" in stderr and "image_size" in stderr
    assert [(t.number, t.state) for t in study_trials(studies, "digits")] == before


def test_a_study_with_steps_from_0_is_not_resumed_and_stays_intact(studies, capsys):
    """Before 2026-11-24 trials reported Keras's 0-based epoch index as the pruning step (made
    here by shifting a study's steps down by one): resuming would mix the two counts."""
    one_trial_study(studies)
    with sqlite3.connect(studies / "vggsearch.db") as db:
        db.execute("UPDATE trial_intermediate_values SET step = step - 1")
    before = [(t.number, t.state, t.intermediate_values) for t in study_trials(studies, "digits")]
    assert 0 in before[0][2]
    code, stderr = search_again(studies, capsys, "--trials", "2")
    assert code == 2 and "Traceback" not in stderr
    assert "counted pruning steps from 0" in stderr, stderr
    assert [(t.number, t.state, t.intermediate_values)
            for t in study_trials(studies, "digits")] == before
    assert main(["report", "--study", "digits", "--studies-dir", str(studies)]) == 0


def test_commands_on_a_missing_study_or_model(studies, capsys):
    for command in (["retrain"], ["report"], ["export", "--format", "keras"]):
        code = main([*command, "--study", "nothing", "--studies-dir", str(studies)])
        assert code == 2 and "no study 'nothing'" in capsys.readouterr().err


def test_a_full_disk_while_caching_is_one_clear_error(studies, monkeypatch):
    """No room for an activation cache file (simulated): a clear error before anything is written,
    no cache file left for a later run to trust, no trial left RUNNING, and the same search
    resumes once there is room."""
    search = dict(subset=200, weights="none", space=TINY_SPACE, epochs=1, seed=0,
                  studies_dir=studies, do_retrain=False, separate_process=False)
    full = shutil.disk_usage(studies.parent)._replace(free=0)
    monkeypatch.setattr("search.cache.shutil.disk_usage", lambda path: full)
    with pytest.raises(UserError, match="no room for the activation cache file .* 0 MB free"):
        run_search("digits", 2, **search)
    assert not [p for p in (studies / "cache").rglob("*") if p.is_file() and ".lock" not in p.name]
    assert "RUNNING" not in [t.state.name for t in study_trials(studies, "digits")]

    monkeypatch.undo()
    run_search("digits", 2, **search)
    states = [t.state.name for t in study_trials(studies, "digits")]
    assert states.count("COMPLETE") + states.count("PRUNED") == 2
