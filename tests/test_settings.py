"""Defaults a user relies on: every command has --help, oneDNN is on unless the user said
otherwise, bfloat16 only where it was measured faster and never in an exported model, the shipped
space is valid, the search's subset and the retrain's images, and --seed
makes a sequential run reproducible."""
import os
import subprocess
import sys

import pytest

from cli import COMMANDS, build_parser, main
from conftest import ROOT, TINY_SPACE
from search.pipeline import run_search
from search.space import DEFAULT_SPACE, Space
from search.study import DEFAULT_SUBSET, SETTINGS_ATTR, connect, default_storage


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and "usage: cli.py " + command in capsys.readouterr().out


@pytest.mark.parametrize("user_value, expected", [(None, "1"), ("0", "0")])
def test_onednn_is_on_unless_the_user_set_it(user_value, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if user_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = user_value
    code = "import search, os; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    assert done.stdout.strip() == expected


def test_the_suffix_computes_in_bfloat16_only_where_it_was_measured_faster(monkeypatch):
    from search import model

    monkeypatch.delenv("VGGSEARCH_PRECISION", raising=False)
    for amx, deep in ((False, "float32"), (True, "mixed_bfloat16")):
        monkeypatch.setattr(model, "_has_amx_bfloat16", lambda: amx)
        assert [model.suffix_dtype(k) for k in range(6)] == ["float32"] * 2 + [deep] * 4
    monkeypatch.setenv("VGGSEARCH_PRECISION", "float32")  # the user's choice wins
    assert model.suffix_dtype(5) == "float32"
    monkeypatch.setenv("VGGSEARCH_PRECISION", "mixed_bfloat16")
    assert model.suffix_dtype(0) == "mixed_bfloat16"


def test_a_bfloat16_study_trains_and_exports_a_float32_model(tmp_path, monkeypatch):
    import keras
    import optuna

    monkeypatch.setenv("VGGSEARCH_PRECISION", "mixed_bfloat16")
    run_search("digits", 1, subset=200, weights="none", space=TINY_SPACE, epochs=1,
               studies_dir=tmp_path, retrain_subset=200, separate_process=False)
    trial, = optuna.load_study(study_name="digits", storage=connect(default_storage(tmp_path))).trials
    assert trial.state.name == "COMPLETE" and trial.user_attrs["compute_dtype"] == "mixed_bfloat16"
    exported = keras.saving.load_model(tmp_path / "digits" / "model.keras")
    layers = [exported.layers[-1], *exported.layers[-1].layers]  # the suffix and its layers
    assert {layer.dtype_policy.name for layer in layers} == {"float32"}


def test_the_default_space_is_valid_and_cacheable():
    space = Space.from_file(DEFAULT_SPACE)
    assert set(space.params) == {"head_units", "dropout", "unfrozen_blocks", "learning_rate",
                                 "batch_size", "augment_strength"}
    assert space.params["learning_rate"]["log"] is True
    assert space.params["augment_strength"]["type"] == "categorical"  # cached levels


def test_the_search_ranks_on_a_subset_and_the_retrain_uses_every_image(tmp_path):
    defaults = build_parser().parse_args(["search"])
    assert (defaults.subset, defaults.retrain_subset) == (DEFAULT_SUBSET, "all")
    assert build_parser().parse_args(["search", "--subset", "all"]).subset == "all"
    # A subset as large as the data set is the whole of it, and the study records it so.
    run_search("digits", 1, subset=DEFAULT_SUBSET, weights="none", space=TINY_SPACE, epochs=1,
               studies_dir=tmp_path, do_retrain=False, separate_process=False)
    study = __import__("optuna").load_study(study_name="digits",
                                            storage=connect(default_storage(tmp_path)))
    assert study.user_attrs[SETTINGS_ATTR]["subset"] is None


def test_the_retrain_repeats_the_best_epoch_within_its_image_budget():
    from types import SimpleNamespace

    from search.retrain import RETRAIN_IMAGES, default_epochs

    settings = SimpleNamespace(epochs=5)
    best_at_4 = SimpleNamespace(user_attrs={"best_epoch": 4})
    assert default_epochs(best_at_4, settings, 3_000) == 4  # a small data set: the trial's count
    assert default_epochs(best_at_4, settings, 60_000) == 2  # MNIST: capped at 2 x 60 000 images
    assert default_epochs(best_at_4, settings, RETRAIN_IMAGES * 2) == 1  # at least one epoch
    assert default_epochs(SimpleNamespace(user_attrs={}), settings, 1_000) == 5  # no record: all


def test_a_seeded_study_is_reproducible(tmp_path):
    runs = []
    for name in ("a", "b"):
        run_search("digits", 3, study_name=name, subset=200, weights="none", space=TINY_SPACE,
                   epochs=2, seed=7, studies_dir=tmp_path, do_retrain=False,
                   separate_process=False)
        study = __import__("optuna").load_study(study_name=name,
                                                storage=connect(default_storage(tmp_path)))
        runs.append([(t.params, t.value) for t in study.trials])
    assert [p for p, _ in runs[0]] == [p for p, _ in runs[1]]
    for (_, a), (_, b) in zip(*runs):
        assert a == b
