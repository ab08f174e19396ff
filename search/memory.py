"""The process's own memory, as trials see it, and what frees it between trials."""
from __future__ import annotations

import ctypes
import gc
import mmap
import os
import platform
from pathlib import Path

HEAP_TOP_PAD_MB = 64  # measured: 64 and 256 MB saved the same page faults
GLIBC_DEFAULT_TOP_PAD = 128 * 1024  # bytes, man mallopt(3)


def anon_rss_mb(pid: int | str = "self") -> float | None:
    """Resident anonymous memory in MB (Linux's RssAnon) of this process or of `pid`: what the
    process itself holds, without the memory-mapped cache pages the OS can drop at will. None where
    /proc is not there (or the process has gone)."""
    return status_mb("RssAnon", pid)


def status_mb(field: str, pid: int | str = "self") -> float | None:
    """A memory figure of /proc/<pid>/status (RssAnon, RssFile, VmHWM...) in MB; None where /proc
    is not there (or the process has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def release_pages(array) -> None:
    """Unmap the pages a process has read of a memory-mapped array (np.load with mmap_mode): they
    stay in the OS's page cache, no longer count in the process's RSS, and come back on the next
    read. Anything else is left as is. A retrain on all of MNIST reads one 3.9 GB view of its
    cache per epoch; holding each after its epoch took the process's peak RSS to 9.3 GiB (README,
    Results)."""
    buffer = getattr(array, "base", None)
    if isinstance(buffer, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        buffer.madvise(mmap.MADV_DONTNEED)


def keep_freed_heap() -> None:
    """Let glibc keep up to HEAP_TOP_PAD_MB of freed memory at the top of each malloc heap
    (mallopt M_TOP_PAD), instead of handing it back to the OS after every free.

    A training step allocates and frees its tensors through malloc; with glibc's default
    (GLIBC_DEFAULT_TOP_PAD) each step's freed memory went back to the kernel and the next step
    faulted it in again, page by page: in a 50-trial study 444 million page faults and 1 103 s of
    kernel time (9 % of its CPU time). With the pad, training 2-4 block suffixes took 3.2x fewer
    page faults and 2.8x less kernel time, and a 12-trial study 2.5x less, for 7-12 % more memory;
    the benchmark's images/s moved within this CPU's noise, the studies' trials took 10-21 % less
    time in three comparisons on two CPUs (README, How a study runs). It must be set before
    TensorFlow allocates (set after a first training step, it changed no fault), so `import search`
    calls it. Only with glibc (Linux's usual C library); a pad the user set (MALLOC_TOP_PAD_
    or GLIBC_TUNABLES' glibc.malloc.top_pad) wins."""
    if (platform.libc_ver()[0] != "glibc" or "MALLOC_TOP_PAD_" in os.environ
            or "glibc.malloc.top_pad" in os.environ.get("GLIBC_TUNABLES", "")):
        return
    M_TOP_PAD = -2  # malloc.h
    ctypes.CDLL("libc.so.6").mallopt(M_TOP_PAD, HEAP_TOP_PAD_MB << 20)


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
