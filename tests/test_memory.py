"""Memory stays bounded however many trials run: after each trial the process lets go of its model,
graphs and dataset (search.memory.clear_session), and a worker whose memory passes a limit after a
trial is replaced by a fresh one (search.worker), for whatever still grows. Between training steps
glibc keeps freed memory for the next step (search.memory.keep_freed_heap); a training run holds
the cache pages of one augmented view at a time."""
import gc
import os
import platform
import subprocess
import sys
import weakref

import numpy as np
import pytest

from conftest import TINY_SPACE, run_cli, study_trials
from search.cache import FeatureCache
from search.data import load_dataset
from search.memory import GLIBC_DEFAULT_TOP_PAD, anon_rss_mb, clear_session, status_mb
from search.model import load_vgg16
from search.preprocess import prepare
from search.train import CachedBatches, train_suffix

N_TRIALS = 3
LIMIT_MB = 1  # under any worker's memory: every worker hands over after its first trial

# After `import search`: page faults of a second malloc-touch-free of 20 MB in 100 KB blocks (under
# the mmap threshold, so from the heap; glibc trims what the first cycle freed, or keeps it).
REUSE_FAULTS = """
import ctypes, resource
import search
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
def cycle():
    blocks = [libc.malloc(100_000) for _ in range(200)]
    for block in blocks:
        ctypes.memset(block, 1, 100_000)
    for block in reversed(blocks):
        libc.free(block)
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
cycle()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_clear_session_lets_go_of_each_trained_suffix_and_its_cached_batches(tmp_path):
    """TensorFlow 2.21 keeps every traced training step, and with it the batches it read (their
    memory-mapped cache files), unless clear_session purges its gradient registry."""
    data = load_dataset("digits")
    train = prepare(data.x_train[:128], data.y_train[:128], 32)
    cache = FeatureCache(tmp_path, load_vgg16("none", 32), "none", 32, flips=False)
    params = dict(unfrozen_blocks=1, augment_strength=0.0, batch_size=32, head_units=16,
                  dropout=0.0, learning_rate=1e-4)
    for seed in range(2):
        before = {id(o) for o in gc.get_objects() if isinstance(o, CachedBatches)}
        suffix = train_suffix(params, cache, train, None, 10, 1, seed)
        batches = [weakref.ref(o) for o in gc.get_objects()
                   if isinstance(o, CachedBatches) and id(o) not in before]
        variable = weakref.ref(suffix.trainable_variables[0].value)  # TensorFlow's own variable
        assert batches and variable() is not None
        del suffix
        clear_session()
        assert [b() for b in batches] == [None] * len(batches)
        assert variable() is None


@pytest.mark.skipif(anon_rss_mb() is None, reason="RssAnon is read from Linux's /proc")
def test_a_worker_over_the_memory_limit_hands_over_to_a_fresh_one(studies):
    done = run_cli("search", "--dataset", "digits", "--subset", "200", "--trials", N_TRIALS,
                   "--epochs", "1", "--pruner", "none", "--weights", "none", "--seed", "3",
                   "--space", TINY_SPACE, "--no-retrain", "--worker-memory-mb", LIMIT_MB,
                   "--studies-dir", studies)
    assert done.returncode == 0, done.stderr
    # The last worker stops at the target, not at the limit.
    assert done.stderr.count("continuing in a fresh worker process") == N_TRIALS - 1, done.stderr
    trials = sorted(study_trials(studies, "digits"), key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE"] * N_TRIALS
    assert len({t.user_attrs["pid"] for t in trials}) == N_TRIALS  # one worker each
    assert all(t.user_attrs["rss_mb"] > LIMIT_MB for t in trials)  # each measured its memory
    # A fresh worker continues the sampler's stream: no configuration is drawn twice.
    assert len({tuple(sorted(t.params.items())) for t in trials}) == N_TRIALS


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                    reason="sets glibc's malloc; this C library is not glibc")
def test_import_search_lets_malloc_keep_freed_memory_unless_the_user_set_the_pad():
    def faults(**env) -> int:
        environment = {k: v for k, v in os.environ.items() if k != "MALLOC_TOP_PAD_"}
        done = subprocess.run([sys.executable, "-c", REUSE_FAULTS], env={**environment, **env},
                              capture_output=True, text=True, check=True)
        return int(done.stdout)

    assert faults() < 100  # the 20 MB kept for the second cycle
    # glibc's default: 4 883 pages trimmed and faulted in again
    assert faults(MALLOC_TOP_PAD_=str(GLIBC_DEFAULT_TOP_PAD)) > 4000


@pytest.mark.skipif(status_mb("RssFile") is None, reason="RssFile is read from Linux's /proc")
def test_a_training_run_unmaps_each_augmented_view_when_it_moves_on(tmp_path):
    np.save(tmp_path / "view0.npy", np.zeros((1024, 16384), np.float32))  # 64 MB
    mapped = np.load(tmp_path / "view0.npy", mmap_mode="r")  # as FeatureCache.activations maps it
    in_memory = np.ones((1024, 16384), np.float32)  # no file pages: only view 0's show in RssFile
    batches = CachedBatches([mapped, in_memory], np.zeros(1024, np.int64), 256, shuffle=True,
                            epochs=2)
    per_epoch = batches.batches_per_epoch
    before = status_mb("RssFile")  # memory-mapped file pages resident in this process
    assert all((batches[j][0] == 0).all() for j in range(per_epoch))  # epoch 1 reads view 0
    read = status_mb("RssFile")
    assert (batches[per_epoch][0] == 1).all()  # epoch 2 reads view 1 ...
    assert read - before > 60 and status_mb("RssFile") < before + 4  # ... and view 0 is unmapped
    assert mapped[5, 7] == 0  # it reads back where a later epoch needs it
