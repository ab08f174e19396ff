"""A whole study end to end, timed: search with vggsearch's defaults (flags change the sizes), retrain
of the best trial, test accuracy. A fresh studies folder each run, so the activation cache is
built inside the timed part, as on a user's first study; `--keep DIR` keeps it afterwards.

    python bench/end_to_end.py --weights PATH                      # the default 50-trial MNIST study
    python bench/end_to_end.py --weights PATH --trials 6 --subset 2000 --epochs 3 --retrain-epochs 1

Prints the trials, best validation accuracy, the trial retrained and its test accuracy, search /
confirmation (`--confirm K`, search.confirm) / retrain / total seconds and the peak memory: RSS
of this process and of its largest trial worker (as the OS counts it, memory-mapped cache pages
included), and the anonymous memory alone (Linux's RssAnon, sampled every second: what the
processes hold themselves, without the cache pages the OS can drop).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import search  # noqa: E402,F401  (TensorFlow's environment first)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from cli import subset_arg  # noqa: E402
from search.memory import anon_rss_mb  # noqa: E402
from search.pipeline import run_search  # noqa: E402
from search.study import DEFAULT_CONFIRM_TOP, DEFAULT_EPOCHS, DEFAULT_SUBSET  # noqa: E402


class AnonymousMemory(threading.Thread):
    """Peak RssAnon, in GiB, of this process and its descendants (the trial workers), sampled from
    Linux's /proc: per process (`largest`) and summed (`together`). Stays 0 without /proc."""

    def __init__(self, interval: float = 1.0):
        super().__init__(daemon=True)
        self.interval, self.finished = interval, threading.Event()
        self.largest = self.together = 0.0

    def run(self) -> None:
        while not self.finished.wait(self.interval):
            held = [(anon_rss_mb(pid) or 0.0) / 1024 for pid in descendants(os.getpid())]
            self.largest = max([self.largest, *held])
            self.together = max(self.together, sum(held))


def descendants(root: int) -> list[int]:
    """`root` and every process below it, from the parent ids in /proc/PID/stat."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:  # the command may hold spaces and parentheses: fields follow its last ')'
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--subset", type=subset_arg, default=DEFAULT_SUBSET,
                        help=f"search images: N or all (default: {DEFAULT_SUBSET})")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--retrain-epochs", type=int,
                        help="epochs of the retrain (default: as `cli.py search`, 2 on MNIST)")
    parser.add_argument("--retrain-subset", type=subset_arg, default="all",
                        help="images of the retrain: N or all (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--confirm", type=int, default=DEFAULT_CONFIRM_TOP, metavar="K",
                        help=f"as `cli.py search --confirm K` (default: {DEFAULT_CONFIRM_TOP}; "
                             "0: off)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the studies folder (database, report, model, cache) in DIR, a "
                             "new folder, for a later look; default: a temporary one, deleted")
    args = parser.parse_args()
    if args.keep and args.keep.exists():
        parser.error(f"--keep {args.keep}: already exists (a new folder times a first study)")

    anonymous = AnonymousMemory()
    anonymous.start()
    started = time.perf_counter()
    folder = nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory(prefix="e2e-")
    with folder as studies:
        summary = run_search(args.dataset, args.trials, studies_dir=studies, weights=args.weights,
                             subset=args.subset, epochs=args.epochs, seed=args.seed,
                             retrain_epochs=args.retrain_epochs,
                             retrain_subset=args.retrain_subset, confirm_top=args.confirm)
    total = time.perf_counter() - started
    anonymous.finished.set()
    report = summary["report"]
    peak = {who: resource.getrusage(which).ru_maxrss / 2**20 for who, which in
            [("this process", resource.RUSAGE_SELF), ("trial workers", resource.RUSAGE_CHILDREN)]}

    table = Table(title=f"{args.dataset} end to end: {args.trials} trials, subset {args.subset}, "
                        f"{args.epochs} epochs, seed {args.seed}, retrained "
                        f"{len(report['retrain']['history'])} epochs on "
                        f"{report['retrain']['images']} images")
    for column in ["complete / pruned / failed", "best val", "retrained", "test accuracy",
                   "search s", "confirm s", "retrain + test s", "total s",
                   "peak RSS GiB (process / largest worker)",
                   "peak RssAnon GiB (largest process / all together)"]:
        table.add_column(column, justify="right")
    counts = summary["trials"]
    table.add_row(f"{counts['complete']} / {counts['pruned']} / {counts['fail']}",
                  f"#{summary['best_trial']} {summary['best_value']:.4f}",
                  f"#{report['retrain']['trial']}", f"{report['test']['test_accuracy']:.4f}",
                  f"{summary['search_seconds']:.0f}",
                  f"{report['seconds'].get('confirm', 0):.0f}",
                  f"{report['seconds']['retrain']:.0f}",
                  f"{total:.0f}", f"{peak['this process']:.2f} / {peak['trial workers']:.2f}",
                  f"{anonymous.largest:.2f} / {anonymous.together:.2f}")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
