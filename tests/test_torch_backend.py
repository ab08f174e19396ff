"""The pipeline on Keras's torch backend: the framework of the GPU machines the study was measured
on, where TensorFlow is not installed. The batched augmentation warps as Keras's layers do; a
search with augmented trials, its retrain and the test set's report run with `import tensorflow`
failing as it does there. Torch is not a vggsearch dependency: the tests run where it is
installed."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, TINY_SPACE, run_cli

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                reason="torch is not installed (Keras's torch backend; not a "
                                       "dependency)")

# Keras's own layers, each with its range pinned to one value, against search.augment_torch's
# single warp with the same values, on the same smooth images: the same map, so the same pixels.
SAME_WARP = """
import math, numpy as np, keras, torch
from scipy.ndimage import gaussian_filter
from search.augment_torch import warp

x = gaussian_filter(np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)), (0, 2, 2, 0))
x = x.astype("float32")
one, zero = torch.ones(4), torch.zeros(4)
cases = {
    "rotation": (warp(torch.as_tensor(x), 0.3 * one, one, zero, zero, one),
                 keras.layers.RandomRotation((0.3 / (2 * math.pi),) * 2, fill_mode="constant")),
    "shift": (warp(torch.as_tensor(x), zero, one, 0.1 * one, 0.05 * one, one),
              keras.layers.RandomTranslation((0.05, 0.05), (0.1, 0.1), fill_mode="constant")),
    "zoom": (warp(torch.as_tensor(x), zero, 1.1 * one, zero, zero, one),
             keras.layers.RandomZoom((0.1, 0.1), fill_mode="constant")),
}
for name, (ours, layer) in cases.items():
    theirs = keras.ops.convert_to_numpy(layer(x, training=True))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), theirs, atol=0.01, err_msg=name)
flipped = warp(torch.as_tensor(x), zero, one, zero, zero, -one)
np.testing.assert_allclose(keras.ops.convert_to_numpy(flipped), x[:, :, ::-1], atol=1e-4)
print("same")
"""


def test_one_batched_warp_matches_kerass_layers():
    done = subprocess.run([sys.executable, "-c", SAME_WARP], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "KERAS_BACKEND": "torch"}, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "same", done.stderr


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
