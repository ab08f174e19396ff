"""The suffix computing in float32 or in mixed bfloat16 (what VGGSEARCH_PRECISION picks): the same
configurations (bench/compare.py's, without augmentation) trained each way on the same cached
activations, same seeds. Variables stay float32 either way; mixed bfloat16 is fast only where the
CPU has bfloat16 units (AMX) that oneDNN uses.

    python bench/precision.py --weights PATH --train 2000 --val 500 --epochs 3 --seeds 2

Prints per configuration and seed the best validation accuracy and the training images/s of each
precision (epochs after the first: the first includes building the graph), then their means.
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import search  # noqa: E402,F401  (TensorFlow's environment first)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from compare import arg_parser, load_data, params_for, temporary_cache  # noqa: E402  (this folder)
from search.memory import clear_session  # noqa: E402
from search.model import N_BLOCKS  # noqa: E402
from search.study import MONITOR  # noqa: E402
from search.train import EpochLog, train_suffix  # noqa: E402

PRECISIONS = ("float32", "mixed_bfloat16")


def timed_speed(log: EpochLog) -> float:
    epochs = log.epochs[1:] or log.epochs
    return statistics.mean(e["images_per_second"] for e in epochs)


def main() -> None:
    parser = arg_parser(__doc__.split("\n\n")[0], epochs=3)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    data, train, val, base = load_data(args)
    blocks = args.only if args.only is not None else range(N_BLOCKS + 1)
    best, speed = {}, {}
    with temporary_cache(args, data, base) as cache:
        for k in blocks:
            for seed in range(args.seeds):
                for precision in PRECISIONS:
                    log = EpochLog(len(train.labels))
                    train_suffix(params_for(k, 0.0), cache, train, val, len(data.class_names),
                                 args.epochs, seed, [log], dtype=precision)
                    best[k, seed, precision] = max(e[MONITOR] for e in log.epochs)
                    speed[k, seed, precision] = timed_speed(log)
                    clear_session()

    table = Table(title=f"{args.dataset}: {args.train} training / {args.val} validation images, "
                        f"{args.epochs} epochs: best validation accuracy and training images/s")
    for column in ["unfrozen", "seed", *(f"{p} {what}" for what in ("accuracy", "images/s")
                                         for p in PRECISIONS), "speed-up"]:
        table.add_column(column, justify="right")
    for k in blocks:
        for seed in [*range(args.seeds), "mean"]:
            seeds = range(args.seeds) if seed == "mean" else [seed]
            acc = {p: statistics.mean(best[k, s, p] for s in seeds) for p in PRECISIONS}
            ips = {p: statistics.mean(speed[k, s, p] for s in seeds) for p in PRECISIONS}
            table.add_row(str(k), str(seed), *(f"{acc[p]:.4f}" for p in PRECISIONS),
                          *(f"{ips[p]:.0f}" for p in PRECISIONS),
                          f"{ips[PRECISIONS[1]] / ips[PRECISIONS[0]]:.2f}x")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
