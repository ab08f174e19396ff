"""Ctrl-C at a safe point. Python raises KeyboardInterrupt wherever the main thread happens to be,
and one raised inside a finalizer or TensorFlow callback is silently dropped. So the CLI's handler
only records the request; training and caching call `check()` after every batch, which raises
there (Optuna then marks the trial failed and the study stays resumable). A second Ctrl-C
interrupts at once."""
from __future__ import annotations

import signal
from contextlib import contextmanager

_requested = False


def check() -> None:
    global _requested
    if _requested:
        _requested = False
        raise KeyboardInterrupt


@contextmanager
def graceful():
    """Within this block, the first Ctrl-C is deferred to the next `check()`."""
    global _requested

    def request(signum, frame):
        global _requested
        _requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, request)
    try:
        yield
    finally:
        _requested = False
        signal.signal(signal.SIGINT, previous)
