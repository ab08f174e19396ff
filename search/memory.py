"""The process's own memory, as trials see it, and what frees it between trials."""
from __future__ import annotations

import gc
from pathlib import Path


def anon_rss_mb(pid: int | str = "self") -> float | None:
    """Resident anonymous memory in MB (Linux's RssAnon) of this process or of `pid`: what the
    process itself holds, without the memory-mapped cache pages the OS can drop at will. None where
    /proc is not there (or the process has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def clear_session() -> None:
    """`keras.backend.clear_session()`, and on TensorFlow the graphs it leaves behind: between
    models, never while one is training.

    Every traced training step registers a gradient of the optimizer's all-reduce in TensorFlow's
    global gradient registry ("CustomGradient-N"), and its closure holds the step's graph, which
    holds the model's variables, its Adam state and the dataset it read, memory-mapped cache files
    included. Nothing removes the entry, so a process kept every model it ever trained (measured:
    12 small trials took RssAnon from 0.5 to 2.3 GB, 0.7 GB with the entries purged; TensorFlow
    2.21 still has the leak, tensorflow/tensorflow#97697; keras-team/tf-keras#898 purges them in
    clear_session the same way). The entries are read only while a step is traced, so after
    training they can go."""
    import keras

    keras.backend.clear_session(free_memory=False)
    if keras.backend.backend() == "tensorflow":
        from tensorflow.python.framework import ops

        registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", {})
        for name in [name for name in registry if name.startswith("CustomGradient-")]:
            del registry[name]
    gc.collect()
