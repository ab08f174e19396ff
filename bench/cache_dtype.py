"""The activation cache stored as float32 or as float16: the same configurations (bench/compare.py's)
trained on each, same data, same seeds; only the stored type differs (batches are float32 again
when they are read).

    python bench/cache_dtype.py --weights PATH --train 2000 --val 500 --epochs 3 --only 0 2 3 4

Prints per configuration the best validation accuracy and training images/s for both types, and
the cache's size on disk for each.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import search  # noqa: E402,F401  (TensorFlow's environment first)
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from compare import CONFIGS, arg_parser, load_data, params_for  # noqa: E402  (this folder)
from search.cache import FeatureCache  # noqa: E402
from search.memory import clear_session  # noqa: E402
from search.model import weights_id  # noqa: E402
from search.train import EpochLog, train_suffix  # noqa: E402

DTYPES = ("float32", "float16")


def main() -> None:
    args = arg_parser(__doc__.split("\n\n")[0], epochs=3).parse_args()
    data, train, val, base = load_data(args)
    configs = [c for c in CONFIGS if args.only is None or c[0] in args.only]
    root = Path(tempfile.mkdtemp(prefix="vggsearch-dtype-"))
    logs, sizes = {}, {}
    try:
        for dtype in DTYPES:
            cache = FeatureCache(root / dtype, base, weights_id(args.weights), args.image_size,
                                 data.flips_keep_label, dtype=dtype)
            for seed, (k, strength) in enumerate(configs):
                log = EpochLog(len(train.labels))
                train_suffix(params_for(k, strength), cache, train, val, len(data.class_names),
                             args.epochs, seed, [log])
                logs[dtype, k, strength] = log
                clear_session()
            sizes[dtype] = sum(f.stat().st_size for f in (root / dtype).rglob("*.npy"))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    table = Table(title=f"{args.dataset}: {args.train} training / {args.val} validation images, "
                        f"{args.epochs} epochs, weights {args.weights}; cache stored as")
    for column in ["unfrozen", "aug", *(f"{d} best val" for d in DTYPES),
                   *(f"{d} img/s" for d in DTYPES), "val change"]:
        table.add_column(column, justify="right")
    for k, strength in configs:
        best = [max(e["val_accuracy"] for e in logs[d, k, strength].epochs) for d in DTYPES]
        speed = [logs[d, k, strength].images_per_second for d in DTYPES]
        table.add_row(str(k), f"{strength:g}", *(f"{b:.4f}" for b in best),
                      *(f"{s:.0f}" for s in speed), f"{best[1] - best[0]:+.4f}")
    console = Console(width=160)
    console.print(table)
    console.print("cache on disk: " + ", ".join(f"{d} {sizes[d] / 1e6:.0f} MB" for d in DTYPES))


if __name__ == "__main__":
    main()
