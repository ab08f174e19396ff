"""Datasets as a user gives them: Keras's MNIST/Fashion-MNIST files, .npz, image folders."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from search.data import load_dataset, split_for_search
from search.preprocess import prepare


@pytest.mark.parametrize("name, first_class", [("mnist", "0"), ("fashion_mnist", "T-shirt/top")])
def test_keras_datasets_load_from_keras_home(name, first_class, keras_home):
    # Keras reads KERAS_HOME when it is imported: check it in a fresh process, as a user runs it.
    code = (f"from search.data import load_dataset; d = load_dataset({name!r}); "
            "print(d.x_train.shape, d.y_train.shape, d.test_set()[0].shape, "
            "repr(d.class_names[0]), d.flips_keep_label)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "KERAS_HOME": str(keras_home)}, timeout=300)
    assert done.returncode == 0, done.stderr
    flips = name == "fashion_mnist"  # never flip digits
    assert done.stdout.splitlines()[-1] == (
        f"(60000, 28, 28) (60000,) (10000, 28, 28) {first_class!r} {flips}")


def test_split_is_stratified_and_subset_limits_the_search():
    data = load_dataset("digits")
    split = split_for_search(data, 0.2, subset=500)
    assert len(split.y_train) + len(split.y_val) == 500 and len(split.y_val) == 100
    assert set(np.bincount(split.y_val)) <= {9, 10, 11}  # every class in proportion


def test_grey_becomes_three_channels_at_the_model_size():
    images = prepare(np.zeros((3, 28, 28), np.uint8), np.zeros(3), 32).images
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.float32


def test_npz_and_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.random((20, 16, 16)), y_train=np.arange(20) % 2,
             x_test=rng.random((4, 16, 16)), y_test=np.arange(4) % 2)
    data = load_dataset(str(tmp_path / "d.npz"))
    assert data.x_train.dtype == np.uint8 and data.class_names == ["0", "1"]

    for label, name in enumerate(["cat", "dog"]):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(5):  # mixed sizes and modes: all become RGB at the first image's size
            mode, size = ("L", (10, 12)) if i % 2 else ("RGB", (14, 14))
            Image.new(mode, size, 30 * i + label).save(tmp_path / "pets" / name / f"{i}.png")
    pets = load_dataset(str(tmp_path / "pets"))
    assert pets.class_names == ["cat", "dog"]
    assert pets.x_train.shape[1:] == (14, 14, 3) and len(pets.y_train) + len(pets.test_set()[1]) == 10


def test_cifar100_class_names_come_from_its_meta_file(tmp_path):
    import pickle

    from search.data import cifar100_names

    folder = tmp_path / "datasets" / "cifar-100-python-target" / "cifar-100-python"
    folder.mkdir(parents=True)
    names = [f"class{i}".encode() for i in range(100)]
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": names}))
    assert cifar100_names(str(tmp_path))[:2] == ["class0", "class1"]
    assert cifar100_names(str(tmp_path / "elsewhere")) is None  # then digits are the names
