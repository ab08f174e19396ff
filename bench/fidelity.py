"""Search fidelity: does a cheap ranking of configurations predict the expensive one?

A study ranks configurations on few images and few epochs, then retrains the winner on more. That
only works where the cheap ranking agrees with the expensive one. This draws `--configs`
configurations at random from the default space (Optuna's RandomSampler, seeded), trains each
through vggsearch's engine (activation cache, `train_suffix`) on nested stratified training sets of
growing size (`--sizes`) for `--epochs` epochs, all validated on the same held-out images, and
prints:

- every configuration's best validation accuracy so far at each (size, epoch);
- for each fidelity (size, epochs): its training seconds over all configurations, the Spearman
  rank correlation of its ranking with the most expensive fidelity's, and the regret: how much
  lower (at the most expensive fidelity) the configuration it ranks first is than the best one.

    python bench/fidelity.py --weights PATH [--sizes 600 1800 5400 --val 1000 --epochs 3 --configs 8]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compare import arg_parser, load_data, temporary_cache  # noqa: E402  (bench/compare.py)

import numpy as np  # noqa: E402
import optuna  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from search.memory import clear_session  # noqa: E402
from search.preprocess import ImageSet, prepare  # noqa: E402
from search.space import DEFAULT_SPACE, Space  # noqa: E402
from search.study import MONITOR  # noqa: E402
from search.train import EpochLog, train_suffix  # noqa: E402


def random_configs(n: int, seed: int) -> list[dict]:
    """`n` configurations drawn uniformly from the default space."""
    space = Space.from_file(DEFAULT_SPACE)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    draw = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [space.sample(draw.ask()) for _ in range(n)]


def nested_subsets(train: ImageSet, sizes: list[int], image_size: int) -> dict[int, ImageSet]:
    """Stratified training sets of each size, each smaller one drawn from the largest."""
    subsets = {}
    for n in sizes:
        if n >= len(train.labels):
            subsets[n] = train
            continue
        x, _, y, _ = train_test_split(train.images, train.labels, train_size=n,
                                      stratify=train.labels, random_state=0)
        subsets[n] = prepare(x, y, image_size)  # already RGB at the size: prepare only re-keys
    return subsets


def describe(params: dict) -> str:
    return (f"{params['unfrozen_blocks']} blocks, lr {params['learning_rate']:.1e}, batch "
            f"{params['batch_size']}, aug {params['augment_strength']:g}, head "
            f"{params['head_units']}, dropout {params['dropout']:.2f}")


def main() -> None:
    parser = arg_parser(__doc__.split("\n\n")[0], epochs=3, val=1000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[600, 1800, 5400],
                        help="training set sizes, cheapest first (the largest is --train's)")
    parser.add_argument("--configs", type=int, default=8, help="configurations to draw")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw")
    args = parser.parse_args()
    args.sizes = sorted(args.sizes)
    args.train = args.sizes[-1]
    data, train, val, base = load_data(args)
    subsets = nested_subsets(train, args.sizes, args.image_size)
    configs = random_configs(args.configs, args.seed)
    n_classes = len(data.class_names)

    # curves[n][i]: per-epoch log of configuration i trained on n images
    curves: dict[int, list[list[dict]]] = {n: [] for n in args.sizes}
    wall: dict[int, float] = {}
    with temporary_cache(args, data, base) as cache:
        for n in args.sizes:
            started = time.perf_counter()
            for i, params in enumerate(configs):
                log = EpochLog(n)
                train_suffix(params, cache, subsets[n], val, n_classes, args.epochs, i, [log])
                curves[n].append(log.epochs)
                clear_session()
                print(f"{n} images, config {i} ({describe(params)}): "
                      + ", ".join(f"{e[MONITOR]:.4f}" for e in log.epochs), flush=True)
            wall[n] = time.perf_counter() - started

    def best_so_far(n: int, epochs: int) -> np.ndarray:
        """Each configuration's best validation accuracy within its first `epochs` epochs (a
        diverged run that stopped early keeps its last)."""
        return np.array([max(e[MONITOR] for e in curve[:epochs]) for curve in curves[n]])

    def train_seconds(n: int, epochs: int) -> float:
        return sum(e["seconds"] for curve in curves[n] for e in curve[:epochs])

    fidelities = [(n, e) for n in args.sizes for e in range(1, args.epochs + 1)]
    console = Console(width=200)
    table = Table(title=f"{args.dataset}: best validation accuracy so far ({len(val.labels)} "
                        f"validation images), by training images and epochs")
    table.add_column("configuration")
    for n, e in fidelities:
        table.add_column(f"{n} e{e}", justify="right")
    scores = {f: best_so_far(*f) for f in fidelities}
    for i, params in enumerate(configs):
        table.add_row(describe(params), *(f"{scores[f][i]:.4f}" for f in fidelities))
    console.print(table)

    top = scores[fidelities[-1]]
    summary = Table(title=f"each fidelity against the most expensive ({args.sizes[-1]} images, "
                          f"{args.epochs} epochs)")
    for column in ["images", "epochs", "training s (all configs)", "share of the most expensive",
                   "Spearman", "regret", "picks"]:
        summary.add_column(column, justify="right")
    most = train_seconds(*fidelities[-1])
    for f in fidelities:
        pick = int(np.argmax(scores[f]))
        summary.add_row(str(f[0]), str(f[1]), f"{train_seconds(*f):.0f}",
                        f"{train_seconds(*f) / most:.2f}", f"{spearmanr(scores[f], top)[0]:.2f}",
                        f"{top.max() - top[pick]:.4f}", f"config {pick}")
    console.print(summary)
    console.print("wall seconds per size (cache, training, validation): "
                  + ", ".join(f"{n}: {wall[n]:.0f}" for n in args.sizes))


if __name__ == "__main__":
    main()
