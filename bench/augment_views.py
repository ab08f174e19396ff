"""Cached augmentation views against online augmentation, at equal epochs.

vggsearch trains augmented trials on a bank of 4 augmented views per strength, each pushed through
the frozen blocks once (search/cache.py), instead of augmenting every batch anew and running the
frozen blocks each step. This trains the same configuration (bench/compare.py's) three ways, for
several seeds (the seed also draws the views): online augmentation through the whole network
(bench/compare.py's naive loop), the cached views (vggsearch's engine), and no augmentation.
The naive loop has no learning-rate warm-up; the other two warm up as trials do, unless
`--warmup-images 0`, which leaves the views the only difference from online augmentation.

    python bench/augment_views.py --weights PATH [--epochs 4 --only 2 --seeds 3 --warmup-images N]

Prints the best validation accuracy of each way per seed, their means, and the seconds of each way.
"""
from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import search  # noqa: E402,F401  (TensorFlow's environment first)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from compare import arg_parser, load_data, naive, params_for  # noqa: E402  (this folder)
from search.cache import FeatureCache  # noqa: E402
from search.memory import clear_session  # noqa: E402
from search.model import weights_id  # noqa: E402
from search.study import MONITOR  # noqa: E402
from search.train import WARMUP_IMAGES, EpochLog, train_suffix  # noqa: E402

WAYS = ("online", "cached views", "none")


def main() -> None:
    parser = arg_parser(__doc__.split("\n\n")[0], epochs=4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--strength", type=float, default=0.5, help="augmentation strength")
    parser.add_argument("--warmup-images", type=int, default=WARMUP_IMAGES,
                        help="learning-rate warm-up of the cached and unaugmented ways")
    args = parser.parse_args()
    data, train, val, base = load_data(args)
    n_classes = len(data.class_names)
    root = Path(tempfile.mkdtemp(prefix="vggsearch-views-"))
    best, seconds = {}, {way: 0.0 for way in WAYS}
    try:
        for k in args.only or [2]:
            for seed in range(args.seeds):
                cache = FeatureCache(root / f"seed{seed}", base, weights_id(args.weights),
                                     args.image_size, data.flips_keep_label, seed=seed)
                for way in WAYS:
                    params = params_for(k, 0.0 if way == "none" else args.strength)
                    started = time.perf_counter()
                    if way == "online":
                        log = naive(base, params, train, val, n_classes, args.epochs,
                                    args.image_size, data.flips_keep_label, seed)
                    else:
                        log = EpochLog(len(train.labels))
                        train_suffix(params, cache, train, val, n_classes, args.epochs, seed,
                                     [log], warmup_images=args.warmup_images)
                    seconds[way] += time.perf_counter() - started
                    best[k, seed, way] = max(e[MONITOR] for e in log.epochs)
                    clear_session()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    table = Table(title=f"{args.dataset}: {args.train} training / {args.val} validation images, "
                        f"{args.epochs} epochs, augmentation strength {args.strength:g}, warm-up "
                        f"over {args.warmup_images} images (not online): best validation accuracy")
    for column in ["unfrozen", "seed", *WAYS, "cached - online"]:
        table.add_column(column, justify="right")
    for k in args.only or [2]:
        for seed in [*range(args.seeds), "mean"]:
            row = {way: (best[k, seed, way] if seed != "mean" else
                         statistics.mean(best[k, s, way] for s in range(args.seeds)))
                   for way in WAYS}
            table.add_row(str(k), str(seed), *(f"{row[w]:.4f}" for w in WAYS),
                          f"{row['cached views'] - row['online']:+.4f}")
    console = Console(width=160)
    console.print(table)
    console.print("seconds in all: " + ", ".join(f"{w} {seconds[w]:.0f}" for w in WAYS)
                  + " (cached views: the views' build included)")


if __name__ == "__main__":
    main()
