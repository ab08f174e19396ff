"""Shared fixtures: the repository's assets, a CLI runner, a scratch studies folder.

Assets (VGG16 weights, MNIST files) come from ../shared/assets when present. A test that needs one
skips with a reason on a user's machine without them, and fails in CI (CI=true), where they exist.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT.parent / "shared" / "assets"
WEIGHTS = ASSETS / "keras" / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
TINY_SPACE = ROOT / "tests" / "spaces" / "tiny.toml"


def require(path: Path) -> Path:
    if not path.exists():
        message = f"{path} is not here (the shared assets are beside the repository in CI)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def weights() -> str:
    """The real VGG16 ImageNet conv weights."""
    return str(require(WEIGHTS))


@pytest.fixture(scope="session")
def keras_home(tmp_path_factory) -> Path:
    """A writable copy of the shared Keras datasets (Keras may write beside them)."""
    home = tmp_path_factory.mktemp("keras_home")
    shutil.copytree(require(ASSETS / "keras" / "datasets"), home / "datasets")
    return home


@pytest.fixture
def studies(tmp_path) -> Path:
    return tmp_path / "studies"


def run_cli(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    """`python cli.py ARGS` as a user would type it; returns the finished process."""
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)], cwd=ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def study_trials(storage_dir: Path, name: str):
    import optuna

    storage = f"sqlite:///{storage_dir / 'vggsearch.db'}"
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
