"""Training throughput of each suffix (k unfrozen VGG16 blocks + head) on every Keras backend here.

For each backend a child process (Keras picks its backend once, at import) trains the suffixes
of a trial, k = 0..5 unfrozen blocks, on random activations of the cut's shape:
  engine: vggsearch's input path (`search.train.CachedBatches`, as a trial reads its cache),
  plain:  `model.fit` on NumPy arrays (the backend's own easy path).
One warm-up epoch, then the timed epochs. TensorFlow runs with oneDNN on (as `import search`
sets it); torch is measured where it is installed (`pip install torch==2.13.0`). Each suffix
computes in the precision a trial would use on that backend (`search.model.suffix_dtype`;
`--precision float32 mixed_bfloat16` runs every backend in each, the same rounds). Each child
mallocs as `import search` sets it (glibc keeps 64 MB of freed heap, search.memory.keep_freed_heap);
`--malloc vggsearch glibc` also runs every backend with glibc's default, and prints each child's
kernel time and page faults. Each child also times the augmentation the cache pushes its views
through (`search.preprocess.augmenter` at strength 0.5, in the cache's batches).
Speeds on a shared CPU drift between runs, so `--rounds R` alternates the backends R times and
reports the median of each cell.

    python bench/backends.py [--images 512 --rounds 3 --only 2 3 4 --precision float32 auto
                              --batch-size 32 64 128 --malloc vggsearch glibc]

Prints images/s per suffix, backend and path, each one's ratio to the fastest of the row, and
the precision it computed in (bf16: mixed_bfloat16). With several `--batch-size` values, one such
table per batch size, measured in the same rounds.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# TensorFlow's environment (search/__init__.py) before any backend; each child chooses its own
from search.memory import GLIBC_DEFAULT_TOP_PAD  # noqa: E402
from search.model import PRECISIONS  # noqa: E402

PATHS = ["engine", "plain"]
BACKENDS = ["tensorflow", "torch"]
IMAGE_SIZE, N_CLASSES = 32, 10
DTYPE_LABELS = {"float32": "f32", "mixed_bfloat16": "bf16"}
# a child's environment for each --malloc: glibc's default pad set, import search leaves it
MALLOCS = {"vggsearch": {}, "glibc": {"MALLOC_TOP_PAD_": str(GLIBC_DEFAULT_TOP_PAD)}}


def measure(only: list[int], images: int, epochs: int, batch_size: int) -> dict:
    """In this process's backend: {"k path": [images/s, dtype policy]}, "augment": images/s
    and "kernel": [system seconds, minor faults]."""
    import keras
    import numpy as np

    from search.memory import clear_session
    from search.model import N_BLOCKS, activation_shape, build_suffix, load_vgg16, suffix_dtype
    from search.preprocess import augmenter
    from search.train import CachedBatches, EpochLog

    base = load_vgg16("none", IMAGE_SIZE)  # speed does not depend on the values of the weights
    rng = np.random.default_rng(0)
    labels = rng.integers(0, N_CLASSES, images)
    result = {}
    for k in only:
        frozen = N_BLOCKS - k
        x = rng.random((images, *activation_shape(IMAGE_SIZE, frozen)), dtype=np.float32)
        dtype = suffix_dtype(k)
        for path in PATHS:
            keras.utils.set_random_seed(0)
            suffix = build_suffix(base, frozen, IMAGE_SIZE, N_CLASSES, 256, 0.3, dtype)
            suffix.compile(optimizer=keras.optimizers.Adam(5e-5),
                           loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            log = EpochLog(images)
            if path == "plain":
                data = dict(x=x, y=labels, batch_size=batch_size)
            else:  # as search.train.fit_suffix passes it
                batches = CachedBatches([x], labels, batch_size, shuffle=True, epochs=1 + epochs)
                data = dict(x=batches, steps_per_epoch=batches.batches_per_epoch, shuffle=False)
            suffix.fit(**data, epochs=1 + epochs, verbose=0, callbacks=[log])
            timed = sum(e["seconds"] for e in log.epochs[1:])  # the warm-up epoch left out
            result[f"{k} {path}"] = [images * epochs / timed, dtype]
            print(f"  {keras.backend.backend()}: {k} unfrozen, {path}, {dtype}: "
                  f"batch {batch_size}: {images * epochs / timed:.0f} img/s", file=sys.stderr,
                  flush=True)
            clear_session()
    result["augment"] = augment_speed(augmenter(0.5, False, seed=0), images)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["kernel"] = [usage.ru_stime, usage.ru_minflt]
    return result


def augment_speed(augment, images: int) -> float:
    """Images/s of `augment` on `images` random images in the cache's batches, after a warm-up."""
    import time

    import keras
    import numpy as np

    from search.cache import BATCH

    x = np.random.default_rng(0).uniform(0, 255, (images, IMAGE_SIZE, IMAGE_SIZE, 3))
    x = x.astype(np.float32)
    keras.ops.convert_to_numpy(augment(x[:BATCH], training=True))
    started = time.perf_counter()
    for start in range(0, images, BATCH):
        keras.ops.convert_to_numpy(augment(x[start:start + BATCH], training=True))
    return images / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512, help="images per epoch")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each backend, alternated")
    parser.add_argument("--only", type=int, nargs="*", default=list(range(6)),
                        help="unfrozen block counts")
    parser.add_argument("--precision", choices=PRECISIONS, nargs="+", default=["auto"],
                        help="VGGSEARCH_PRECISION for every backend, one run each "
                             "(auto: as a trial computes)")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64],
                        help="batch sizes, one table each (the space's are 32, 64, 128)")
    parser.add_argument("--malloc", choices=list(MALLOCS), nargs="+", default=["vggsearch"],
                        help="malloc's top pad: vggsearch's 64 MB or glibc's default, one run each")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.only, args.images, args.epochs, args.batch_size[0])))
        return

    from rich.console import Console
    from rich.table import Table

    backends = [b for b in BACKENDS if importlib.util.find_spec(b) is not None]
    print(f"backends: {', '.join(backends)} (not installed: "
          f"{', '.join(set(BACKENDS) - set(backends)) or 'none'})")
    runs = [(backend, precision, malloc) for malloc in args.malloc
            for precision in args.precision for backend in backends]
    speeds: dict[tuple, list[float]] = {}
    dtypes: dict[tuple, str] = {}
    kernel: dict[tuple, list[list[float]]] = {}  # (run, batch size): [system seconds, faults]
    augment: dict[str, list[float]] = {}  # backend: images/s of the cache's augmentation
    for _ in range(args.rounds):
        for batch_size in args.batch_size:
            for backend, precision, malloc in runs:
                child = subprocess.run(
                    [sys.executable, __file__, "--child", "--images", str(args.images),
                     "--epochs", str(args.epochs), "--batch-size", str(batch_size),
                     "--only", *map(str, args.only)],
                    env={**os.environ, "KERAS_BACKEND": backend, "VGGSEARCH_PRECISION": precision,
                         **MALLOCS[malloc]},
                    stdout=subprocess.PIPE, text=True)
                if child.returncode:
                    sys.exit(f"{backend}, {precision}, malloc {malloc}, batch {batch_size}: failed "
                             f"(exit {child.returncode})")
                measured = json.loads(child.stdout.splitlines()[-1])
                kernel.setdefault((backend, precision, malloc, batch_size), []).append(
                    measured.pop("kernel"))
                augment.setdefault(backend, []).append(measured.pop("augment"))
                for cell, (speed, dtype) in measured.items():
                    k, path = cell.split()
                    cell = (int(k), backend, precision, malloc, path, batch_size)
                    speeds.setdefault(cell, []).append(speed)
                    dtypes[cell] = DTYPE_LABELS[dtype]

    console = Console(width=160)
    columns = [(*run, path) for run in runs for path in PATHS]
    for batch_size in args.batch_size:
        table = Table(title=f"training images/s, median of {args.rounds} runs of {args.images} "
                            f"images x {args.epochs} epochs after a warm-up; batch {batch_size}, "
                            f"{IMAGE_SIZE} px; (ratio to the row's fastest) and the precision "
                            "computed in")
        table.add_column("unfrozen", justify="right")
        for backend, precision, malloc, path in columns:
            table.add_column(f"{backend} {path}\n{precision}\nmalloc {malloc}", justify="right")
        for k in args.only:
            row = {c: statistics.median(speeds[(k, *c, batch_size)]) for c in columns}
            fastest = max(row.values())
            table.add_row(str(k), *[f"{row[c]:.0f} ({row[c] / fastest:.2f}) "
                                    f"{dtypes[(k, *c, batch_size)]}" for c in columns])
        console.print(table)
    table = Table(title="kernel (system) seconds and minor page faults of a child, median")
    table.add_column("backend, precision, malloc")
    for batch_size in args.batch_size:
        table.add_column(f"batch {batch_size}", justify="right")
    for run in runs:
        cells = [[statistics.median(v) for v in zip(*kernel[(*run, b)])] for b in args.batch_size]
        table.add_row(", ".join(run), *[f"{seconds:.1f} s, {faults / 1e6:.2f} M faults"
                                        for seconds, faults in cells])
    console.print(table)
    console.print("the cache's augmentation (strength 0.5), images/s, median: " + ", ".join(
        f"{backend} {statistics.median(speeds):.0f}" for backend, speeds in augment.items()))


if __name__ == "__main__":
    main()
