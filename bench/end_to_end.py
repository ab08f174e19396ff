"""A whole study end to end, timed: search with vggsearch's defaults (flags change the sizes), retrain
of the best trial, test accuracy. A fresh studies folder each run, so the activation cache is
built inside the timed part, as on a user's first study.

    python bench/end_to_end.py --weights PATH                      # the default 50-trial MNIST study
    python bench/end_to_end.py --weights PATH --trials 6 --subset 2000 --epochs 3 --retrain-epochs 1

Prints the trials, best validation accuracy, test accuracy, search / retrain / total seconds and the
peak RSS of this process and of its trial workers.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import search  # noqa: E402,F401  (TensorFlow's environment first)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from cli import subset_arg  # noqa: E402
from search.pipeline import run_search  # noqa: E402
from search.study import DEFAULT_EPOCHS, DEFAULT_SUBSET  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--subset", type=subset_arg, default=DEFAULT_SUBSET,
                        help=f"search images: N or all (default: {DEFAULT_SUBSET})")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--retrain-epochs", type=int,
                        help="epochs of the retrain on all images (default: the best trial's best)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vggsearch-e2e-") as studies:
        summary = run_search(args.dataset, args.trials, studies_dir=studies, weights=args.weights,
                             subset=args.subset, epochs=args.epochs, seed=args.seed,
                             retrain_epochs=args.retrain_epochs)
    total = time.perf_counter() - started
    report = summary["report"]
    peak = {who: resource.getrusage(which).ru_maxrss / 2**20 for who, which in
            [("this process", resource.RUSAGE_SELF), ("trial workers", resource.RUSAGE_CHILDREN)]}

    table = Table(title=f"{args.dataset} end to end: {args.trials} trials, subset {args.subset}, "
                        f"{args.epochs} epochs, seed {args.seed}, retrained "
                        f"{len(report['retrain']['history'])} epochs on "
                        f"{report['retrain']['images']} images")
    for column in ["complete / pruned / failed", "best val", "test accuracy", "search s",
                   "retrain + test s", "total s", "peak RSS GiB (process / workers)"]:
        table.add_column(column, justify="right")
    counts = summary["trials"]
    table.add_row(f"{counts['complete']} / {counts['pruned']} / {counts['fail']}",
                  f"{summary['best_value']:.4f}", f"{report['test']['test_accuracy']:.4f}",
                  f"{summary['search_seconds']:.0f}", f"{report['seconds']['retrain']:.0f}",
                  f"{total:.0f}", f"{peak['this process']:.2f} / {peak['trial workers']:.2f}")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
