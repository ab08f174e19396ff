"""Learning rate by unfrozen blocks: where fine-tuning learns, stalls or diverges.

The default space draws the learning rate from one range whatever the number of unfrozen blocks.
Fine-tuning pretrained blocks wants a low rate (the keras-io transfer-learning guide), and the more
blocks train the lower: a rate too high for the block count stalls or diverges, which the pruner
only notices after paying for epochs. This trains a grid of configurations, `--blocks` x `--rates`,
everything else fixed by the flags, through vggsearch's engine (activation cache, `train_suffix`)
on the same images, once per seed, and prints every run's validation accuracy after each epoch and
each cell's worst final accuracy over the seeds: the rates each block count tolerates can be read
off.

    python bench/learning_rates.py --weights PATH [--blocks 1 2 3 4 --rates 3e-5 1e-4 3e-4 --seeds 2]
"""
from __future__ import annotations

import sys
import time
from itertools import product
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compare import arg_parser, load_data, temporary_cache  # noqa: E402  (bench/compare.py)

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from search.memory import clear_session  # noqa: E402
from search.study import MONITOR  # noqa: E402
from search.train import WARMUP_IMAGES, EpochLog, train_suffix  # noqa: E402


def main() -> None:
    parser = arg_parser(__doc__.split("\n\n")[0], epochs=3)
    parser.add_argument("--blocks", type=int, nargs="+", default=[1, 2, 3, 4],
                        help="unfrozen block counts")
    parser.add_argument("--rates", type=float, nargs="+", default=[3e-5, 1e-4, 3e-4],
                        help="Adam learning rates")
    parser.add_argument("--seeds", type=int, default=2, help="runs of each cell, seeds 0..N-1")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--augment", type=float, default=0.25)
    parser.add_argument("--head-units", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--warmup-images", type=int, default=WARMUP_IMAGES,
                        help="raise the rate linearly from 0 over this many first images "
                             "(0: no warm-up)")
    args = parser.parse_args()
    data, train, val, base = load_data(args)
    fixed = dict(batch_size=args.batch_size, augment_strength=args.augment,
                 head_units=args.head_units, dropout=args.dropout)

    curves: dict[tuple[int, float, int], list[float]] = {}  # (blocks, rate, seed) -> val per epoch
    seconds: dict[int, float] = {}  # blocks -> training seconds of all its runs
    started = time.perf_counter()
    with temporary_cache(args, data, base) as cache:
        for blocks, rate, seed in product(args.blocks, args.rates, range(args.seeds)):
            params = dict(fixed, unfrozen_blocks=blocks, learning_rate=rate)
            log = EpochLog(len(train.labels))
            train_suffix(params, cache, train, val, len(data.class_names), args.epochs, seed,
                         [log], warmup_images=args.warmup_images)
            clear_session()
            curves[blocks, rate, seed] = [e[MONITOR] for e in log.epochs]
            seconds[blocks] = seconds.get(blocks, 0.0) + sum(e["seconds"] for e in log.epochs)
            print(f"{blocks} blocks, lr {rate:.1e}, seed {seed}: "
                  + ", ".join(f"{a:.4f}" for a in curves[blocks, rate, seed]), flush=True)
    wall = time.perf_counter() - started

    console = Console(width=200)
    table = Table(title=f"{args.dataset}: validation accuracy after each epoch "
                        f"({len(train.labels)} training / {len(val.labels)} validation images, "
                        f"{fixed}, warm-up over {args.warmup_images} images), one column per "
                        f"seed; 'worst' is the lowest final accuracy over the seeds")
    table.add_column("unfrozen blocks", justify="right")
    table.add_column("learning rate", justify="right")
    for seed in range(args.seeds):
        table.add_column(f"seed {seed}", justify="right")
    table.add_column("worst", justify="right")
    for blocks in args.blocks:
        for rate in args.rates:
            runs = [curves[blocks, rate, seed] for seed in range(args.seeds)]
            table.add_row(str(blocks), f"{rate:.1e}", *(" ".join(f"{a:.3f}" for a in run)
                                                         for run in runs),
                          f"{min(run[-1] for run in runs):.4f}")
    console.print(table)
    console.print("training seconds per block count (all its runs): "
                  + ", ".join(f"{b}: {seconds[b]:.0f}" for b in args.blocks)
                  + f"; wall {wall:.0f} s with the cache")


if __name__ == "__main__":
    main()
