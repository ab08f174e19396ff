"""Every benchmark in bench/ runs to its table: each script on digits at the smallest sizes, with
random weights, so that a change which breaks one is found here, not when a README figure is next
measured. The figures themselves are not checked: at these sizes they mean nothing."""
import subprocess
import sys

import pytest

from conftest import ROOT

DIGITS = ["--dataset", "digits", "--weights", "none"]
SMALLEST = {
    "compare.py": [*DIGITS, "--train", "60", "--val", "40", "--epochs", "1", "--naive-epochs", "1",
                   "--only", "0", "--seeds", "2"],
    "augment_views.py": [*DIGITS, "--train", "60", "--val", "40", "--epochs", "1", "--seeds", "1",
                         "--only", "0", "--warmup-images", "0"],
    "cache_dtype.py": [*DIGITS, "--train", "60", "--val", "40", "--epochs", "1", "--only", "0"],
    "fidelity.py": [*DIGITS, "--sizes", "40", "80", "--val", "40", "--epochs", "1", "--configs",
                    "2"],
    "learning_rates.py": [*DIGITS, "--train", "60", "--val", "40", "--epochs", "1", "--blocks", "0",
                          "--rates", "1e-4", "--seeds", "1"],
    "precision.py": [*DIGITS, "--train", "60", "--val", "40", "--epochs", "1", "--seeds", "1",
                     "--only", "0"],
    "retrain_budget.py": [*DIGITS, "--subset", "100", "--epochs", "2", "--unfrozen", "0",
                          "--anneal"],
    "end_to_end.py": [*DIGITS, "--trials", "1", "--subset", "100", "--epochs", "1",
                      "--retrain-epochs", "1", "--retrain-subset", "200"],
    "pruners.py": [*DIGITS, "--train", "60", "--val", "40", "--epochs", "2", "--configs", "3",
                   "--orders", "5"],
    "backends.py": ["--images", "64", "--epochs", "1", "--rounds", "1", "--only", "1",
                    "--precision", "mixed_bfloat16", "--batch-size", "32", "--malloc", "vggsearch",
                    "glibc"],
}


def test_every_benchmark_is_listed():
    assert sorted(p.name for p in (ROOT / "bench").glob("*.py")) == sorted(SMALLEST)


@pytest.mark.parametrize("script", sorted(SMALLEST))
def test_benchmark_prints_its_table(script):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *SMALLEST[script]],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "┏" in done.stdout, done.stdout[-3000:]  # a rich table's top border
