"""The pipeline on Keras's torch backend: the framework of the GPU machines the study was measured
on, where TensorFlow is not installed. A search with augmented trials, its retrain and the test
set's report, with `import tensorflow` failing as it does there. Torch is not a vggsearch
dependency: the test runs where it is installed."""
import importlib.util
import json

import pytest

from conftest import TINY_SPACE, run_cli


@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="torch is not installed (Keras's torch backend; not a dependency)")
def test_search_retrain_report_on_torch_without_tensorflow(studies, tmp_path):
    blocked = tmp_path / "no_tensorflow" / "tensorflow"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('TensorFlow is not installed here')\n")
    space = tmp_path / "augmented.toml"  # every trial augments: the cache's augmented views
    space.write_text(TINY_SPACE.read_text().replace("choices = [0.0, 0.5]", "choices = [0.5]"))
    assert space.read_text() != TINY_SPACE.read_text()

    done = run_cli("search", "--dataset", "digits", "--subset", "300", "--space", space,
                   "--trials", "2", "--epochs", "2", "--weights", "none", "--seed", "0",
                   "--retrain-epochs", "1", "--studies-dir", studies,
                   env={"KERAS_BACKEND": "torch", "PYTHONPATH": str(blocked.parent)})

    assert done.returncode == 0, done.stderr
    assert done.stderr.count("aug 0.5") == 2, done.stderr
    report = json.loads((studies / "digits" / "report.json").read_text())
    assert report["test"]["test_accuracy"] > 0.1  # 10 classes: the retrained model learned
