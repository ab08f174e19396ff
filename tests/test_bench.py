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
    # reads a finished study: the test makes one in {studies} first
    "selection.py": ["--studies-dir", "{studies}", "--study", "digits",
                     "--holdout", "50", "--seeds", "2"],
}


def test_every_benchmark_is_listed():
    assert sorted(p.name for p in (ROOT / "bench").glob("*.py")) == sorted(SMALLEST)


@pytest.mark.parametrize("script", sorted(SMALLEST))
def test_benchmark_prints_its_table(script, tmp_path):
    args = [arg.format(studies=tmp_path) for arg in SMALLEST[script]]
    if "{studies}" in SMALLEST[script]:
        _run(ROOT / "cli.py", "search", *DIGITS, "--trials", "2", "--subset", "100", "--epochs",
             "2", "--pruner", "none", "--seed", "0", "--no-retrain", "--studies-dir", tmp_path)
    done = _run(ROOT / "bench" / script, *args)
    assert "┏" in done.stdout, done.stdout[-3000:]  # a rich table's top border
    if script == "selection.py":  # it must train each trial exactly as the study did
        assert "validation reproduced for 2 of 2 trials" in done.stdout, done.stdout[-3000:]


def _run(script, *args) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(script), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done
