"""`cli.py preview`: images per class as the model sees them, and the search's augmentation."""
import keras
import numpy as np
from PIL import Image

from conftest import run_cli
from search.data import load_dataset
from search.preprocess import augmenter
from search.preview import PER_CLASS, preview


def test_preview_grid_and_augmented_panels(tmp_path):
    data = load_dataset("digits")
    shown = preview(data, [0.0, 0.5], tmp_path / "p.png")
    assert set(shown.panels) == {0.0, 0.5}  # strength 0 is the original panel itself
    assert shown.panels[0.0].shape == (10, PER_CLASS, 32, 32, 3)
    assert shown.class_names == [str(i) for i in range(10)]
    assert not np.allclose(shown.panels[0.5], shown.panels[0.0])
    width, height = Image.open(tmp_path / "p.png").size
    assert height > width / 2  # 10 rows of classes for 2 panels of 4 columns

    only = preview(data, [0.0], tmp_path / "q.png")
    assert list(only.panels) == [0.0]
    np.testing.assert_array_equal(only.panels[0.0], shown.panels[0.0])


def test_digits_are_never_flipped():
    def flips(pipeline):
        return any(isinstance(layer, keras.layers.RandomFlip) for layer in pipeline.layers)

    assert not flips(augmenter(1.0, load_dataset("digits").flips_keep_label, 0))
    assert flips(augmenter(1.0, True, 0))


def test_preview_command_writes_the_png(tmp_path):
    done = run_cli("preview", "--dataset", "digits", "--strength", "0.5", "--out",
                   tmp_path / "d.png")
    assert done.returncode == 0, done.stderr
    assert str(tmp_path / "d.png") in done.stderr and (tmp_path / "d.png").stat().st_size > 0
    bad = run_cli("preview", "--dataset", "digits", "--strength", "3")
    assert bad.returncode == 2 and "between 0 and 1" in bad.stderr
