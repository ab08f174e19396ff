"""Shared fixtures: the repository's assets, a CLI runner, a scratch studies folder.

Assets (VGG16 weights, MNIST files) come from $VGGSEARCH_ASSETS, or else from the nearest
`shared/assets` beside the repository or one of its parent folders. A test that needs one skips with
a reason where they are absent (a user's machine) and fails in CI (CI=true), which always has them;
the test header says where they were found.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A shell runs a background job (`pytest &`, nohup) with Ctrl-C ignored, and the processes it
# starts inherit that: the tests stop servers and searches with Ctrl-C (SIGINT), so a handled
# SIGINT here, which exec resets to the default, gives them back the real key.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def find_assets() -> Path:
    if os.environ.get("VGGSEARCH_ASSETS"):
        return Path(os.environ["VGGSEARCH_ASSETS"])
    candidates = [folder / "shared" / "assets" for folder in ROOT.parents]
    return next((c for c in candidates if c.is_dir()), candidates[0])


ASSETS = find_assets()
WEIGHTS = ASSETS / "keras" / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
TINY_SPACE = ROOT / "tests" / "spaces" / "tiny.toml"


# pytest-xdist's two workers (pyproject.toml) take the test files in this order: the longest first,
# so that they finish together rather than one running test_workers' searches alone at the end.
LONGEST_FIRST = ("test_workers.py", "test_bench.py", "test_cli_end_to_end.py", "test_export.py",
                 "test_resume.py", "test_settings.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a module


def pytest_report_header(config):
    found = "found" if ASSETS.is_dir() else "absent: tests that need them skip"
    return f"vggsearch assets (VGG16 weights, Keras datasets): {ASSETS} ({found})"


def require(path: Path, hint: str = "set VGGSEARCH_ASSETS to the shared assets folder") -> Path:
    """`path`, which CI (CI=true: shared/ beside the clone, packages installed by .ci/run) must
    have and a user's machine may not."""
    if not path.exists():
        reason = f"{path} is not here ({hint})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the shared assets: {reason}")
        pytest.skip(reason)
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def studies_served(port: int, deadline: float, process) -> list[str] | None:
    """Names of the studies the dashboard on `port` lists, once it answers."""
    while time.time() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                return [s["study_name"] for s in json.load(r)["study_summaries"]]
        except OSError:
            time.sleep(0.3)
    return None


@contextmanager
def serving_dashboard(*args):
    """`python cli.py dashboard ARGS` on a free port, stopped with Ctrl-C at the end: yields
    (port, process); the process's stderr is in `process.output` afterwards."""
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "dashboard", "--port",
                               str(port), *map(str, args)], cwd=ROOT, stderr=subprocess.PIPE,
                              text=True)
    try:
        yield port, server
    finally:
        server.send_signal(signal.SIGINT)
        _, server.output = server.communicate(timeout=30)


@contextmanager
def reading(port: int, every: float):
    """Ask the dashboard on `port` for its studies every `every` seconds (0: back to back) in a
    thread: yields the list of answers (study names, or the error of a request that failed),
    complete at the block's end."""
    answers, stop = [], threading.Event()

    def read():
        while not stop.wait(every):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies",
                                            timeout=10) as r:
                    answers.append([s["study_name"] for s in json.load(r)["study_summaries"]])
            except OSError as err:
                answers.append(err)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield answers
    finally:
        stop.set()
        thread.join()


def require_server(host: str, port: int, what: str) -> None:
    """A storage server the test talks to: CI (CI=true) must have it running, a user's machine
    may not."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        reason = f"no {what} answers on {host}:{port}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs {what}: {reason}")
        pytest.skip(reason)


POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
MYSQL = "mysql://root@127.0.0.1:3306/test"
REDIS = "redis://127.0.0.1:6379/0"


def storage_url(kind: str, tmp_path) -> str:
    """A storage URL of `kind`: a file under `tmp_path`, or this machine's PostgreSQL, MySQL
    (MariaDB) or Redis."""
    if kind == "postgresql":
        require_server("127.0.0.1", 5432, "PostgreSQL")
        return POSTGRES
    if kind == "mysql":
        require_server("127.0.0.1", 3306, "MySQL/MariaDB")
        return MYSQL
    if kind == "redis":
        require_server("127.0.0.1", 6379, "Redis")
        return REDIS
    return {"sqlite": f"sqlite:///{tmp_path / 'v.db'}",
            "journal": f"journal:///{tmp_path / 'v.journal'}"}[kind]
