"""Datasets: load raw images and labels, split them for the search, keep the test set apart.

A `Dataset` holds the training images in memory; its test images are only reachable through
`Dataset.test_set()`, which the final evaluation calls and the search never does (tests check it).
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from search.errors import UserError

BUILTIN = ("mnist", "fashion_mnist", "cifar10", "cifar100", "digits")
FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"]
# Files Keras looks for under $KERAS_HOME/datasets/ before it tries to download.
KERAS_FILES = {
    "mnist": "mnist.npz",
    "fashion_mnist": "fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz",
    "cifar10": "cifar-10-batches-py-target/cifar-10-batches-py/ (cifar-10-python.tar.gz unpacked)",
    "cifar100": "cifar-100-python-target/cifar-100-python/ (cifar-100-python.tar.gz unpacked)",
}
FOLDER_TEST_FRACTION = 0.2  # held out as the test set of an image folder without train/ and test/


@dataclass
class Dataset:
    """Raw uint8 images (N, H, W) or (N, H, W, C), integer labels, and the class names."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    class_names: list[str]
    flips_keep_label: bool  # horizontal flips are augmentation only where they keep the label
    _load_test: Callable[[], tuple[np.ndarray, np.ndarray]]

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        """The test images and labels: for the final evaluation only."""
        return self._load_test()


@dataclass
class Split:
    """The images a search sees: a training part and a stratified validation part."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def load_dataset(name: str) -> Dataset:
    """`name` is one of BUILTIN, a folder of class sub-folders of images, or an .npz file."""
    if name in BUILTIN:
        return _load_builtin(name)
    path = Path(name).expanduser()
    if path.is_dir():
        return _load_folder(path)
    if path.suffix == ".npz" and path.is_file():
        return _load_npz(path)
    raise UserError(
        f"unknown dataset {name!r}: use one of {', '.join(BUILTIN)}, a folder of class "
        "sub-folders of images, or an .npz file with x_train, y_train, x_test, y_test")


def training_images(data: Dataset, subset: int | None, seed: int = 0):
    """The training images, or a stratified subset of `subset` of them."""
    if subset is None or subset >= len(data.y_train):
        return data.x_train, data.y_train
    inside, _ = subset_indices(data, subset, seed)
    return data.x_train[inside], data.y_train[inside]


def subset_indices(data: Dataset, subset: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified subset of `subset` training images, and of the images left out."""
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(np.arange(len(data.y_train)), train_size=subset,
                                stratify=data.y_train, random_state=seed)
    except ValueError as err:
        raise UserError(f"--subset {subset} is too small for a stratified sample ({err})") from err


def split_for_search(data: Dataset, val_fraction: float, subset: int | None, seed: int = 0) -> Split:
    """Stratified subset of the training images (if asked), then a stratified validation split."""
    from sklearn.model_selection import train_test_split

    x, y = training_images(data, subset, seed)
    try:
        x_train, x_val, y_train, y_val = train_test_split(
            x, y, test_size=val_fraction, stratify=y, random_state=seed)
    except ValueError as err:  # too few images of a class for a stratified split
        raise UserError(f"cannot make a stratified validation split of {len(y)} images: {err}") from err
    return Split(x_train, y_train, x_val, y_val)


def _keras_home() -> str:
    return os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))


def _load_builtin(name: str) -> Dataset:
    if name == "digits":
        return _load_digits()
    import keras

    loader = getattr(keras.datasets, name)
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as err:  # Keras raises plain Exceptions for failed downloads
        where = os.path.join(_keras_home(), "datasets", KERAS_FILES[name])
        raise UserError(
            f"cannot load {name} ({type(err).__name__}); offline, place its files at {where} "
            "or point KERAS_HOME at a folder that has them") from err
    y_train, y_test = y_train.reshape(-1).astype(np.int64), y_test.reshape(-1).astype(np.int64)
    names = {"fashion_mnist": FASHION_NAMES, "cifar10": CIFAR10_NAMES}.get(name)
    if name == "cifar100":
        names = cifar100_names(_keras_home())
    names = names or [str(i) for i in range(int(y_train.max()) + 1)]
    return Dataset(name, x_train, y_train, names, name in ("fashion_mnist", "cifar10", "cifar100"),
                   lambda: (x_test, y_test))


def cifar100_names(keras_home: str) -> list[str] | None:
    """The 100 fine label names, from the `meta` file beside Keras's unpacked CIFAR-100."""
    import pickle

    meta = os.path.join(keras_home, "datasets", "cifar-100-python-target", "cifar-100-python",
                        "meta")
    try:
        with open(meta, "rb") as f:
            return [n.decode() for n in pickle.load(f, encoding="bytes")[b"fine_label_names"]]
    except (OSError, KeyError, pickle.UnpicklingError):
        return None


def _load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits (0..16 grey levels); a fixed stratified 20 % is the test set."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0)
    return Dataset("digits", x_train, y_train, [str(i) for i in range(10)], False,
                   lambda: (x_test, y_test))


def _load_npz(path: Path) -> Dataset:
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise UserError(f"{path}: missing array(s) {', '.join(missing)}")
            x_train, y_train, x_test, y_test = (npz[k] for k in keys)
    except UserError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise UserError(f"{path}: not a readable .npz file ({err})") from err
    for x, y, part in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if x.ndim not in (3, 4) or len(x) != len(y) or len(x) == 0:
            raise UserError(f"{path}: x_{part} must be (N, H, W) or (N, H, W, C) with one label per "
                            f"image; got {x.shape} and {y.shape}")
    y_train, y_test = y_train.reshape(-1).astype(np.int64), y_test.reshape(-1).astype(np.int64)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    _check_classes(np.unique(y_train), path)
    x_train, x_test = _as_uint8(x_train), _as_uint8(x_test)
    return Dataset(path.stem, x_train, y_train, [str(i) for i in range(n_classes)], False,
                   lambda: (x_test, y_test))


def _as_uint8(x: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] are scaled to 0..255; everything else is clipped to it."""
    if x.dtype != np.uint8:
        scale = 255.0 if np.issubdtype(x.dtype, np.floating) and x.max() <= 1.0 else 1.0
        x = np.clip(x.astype(np.float32) * scale, 0, 255).round().astype(np.uint8)
    return x


def _load_folder(path: Path) -> Dataset:
    """A folder of class sub-folders; with train/ and test/ sub-folders, those are the split."""
    if (path / "train").is_dir() and (path / "test").is_dir():
        class_names = _class_folders(path / "train")
        x_train, y_train = _read_images(path / "train", class_names)
        x_test, y_test = _read_images(path / "test", class_names)
    else:
        from sklearn.model_selection import train_test_split

        class_names = _class_folders(path)
        x, y = _read_images(path, class_names)
        try:
            x_train, x_test, y_train, y_test = train_test_split(
                x, y, test_size=FOLDER_TEST_FRACTION, stratify=y, random_state=0)
        except ValueError as err:
            raise UserError(f"{path}: too few images per class to hold out a test set ({err})") from err
    return Dataset(path.name, x_train, y_train, class_names, False, lambda: (x_test, y_test))


def _class_folders(path: Path) -> list[str]:
    names = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    _check_classes(names, path)
    return names


def _check_classes(classes, path: Path) -> None:
    if len(classes) < 2:
        raise UserError(f"{path}: a classifier needs at least two classes, found {len(classes)}")


def _read_images(path: Path, class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every image as RGB at the size of the first one (mixed sizes are resized to it)."""
    from PIL import Image, UnidentifiedImageError

    images, labels, size = [], [], None
    for label, name in enumerate(class_names):
        for file in sorted((path / name).iterdir()):
            if file.name.startswith(".") or file.is_dir():
                continue
            try:
                with Image.open(file) as img:
                    rgb = img.convert("RGB")
            except (UnidentifiedImageError, OSError) as err:
                raise UserError(f"{file}: not a readable image ({type(err).__name__})") from err
            size = size or rgb.size
            images.append(np.asarray(rgb.resize(size) if rgb.size != size else rgb))
            labels.append(label)
    if not images:
        raise UserError(f"{path}: no images found in its class sub-folders")
    return np.stack(images), np.array(labels, dtype=np.int64)
