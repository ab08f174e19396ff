"""The pipeline from Python: the test set stays out of the search, the cache is exact and reused."""
import keras
import numpy as np
import optuna
import pytest

from conftest import TINY_SPACE
from search.cache import FeatureCache
from search.data import Dataset, load_dataset
from search.model import N_BLOCKS, assemble, build_suffix, frozen_prefix, load_vgg16
from search.objective import StrictPruningCallback
from search.pipeline import run_search
from search.preprocess import prepare, vgg16_inputs
from search.study import make_pruner
from search.train import CachedBatches, EpochLog, train_suffix


def test_search_never_reads_the_test_set(monkeypatch, studies):
    reads = []

    def guarded(self):
        reads.append(self.name)
        return original(self)

    original = Dataset.test_set
    monkeypatch.setattr(Dataset, "test_set", guarded)
    run_search("digits", 2, subset=200, weights="none", space=TINY_SPACE, epochs=1,
               studies_dir=studies, do_retrain=False, separate_process=False)  # sees the patch
    assert reads == []  # the whole search ran without touching it
    run_search("digits", 2, subset=200, weights="none", space=TINY_SPACE, epochs=1,
               studies_dir=studies, retrain_epochs=1, retrain_subset=100, separate_process=False)
    assert reads == ["digits"]  # read once, by the final evaluation


def test_suffix_on_cached_activations_equals_whole_network(tmp_path):
    """For every cut: the cache holds VGG16's own activations at that block boundary, and the
    trained part on the cache gives the same outputs as the whole network on the images."""
    import keras

    data = load_dataset("digits")
    images = prepare(data.x_train[:40], data.y_train[:40], 32)
    x = vgg16_inputs(images.images)
    base = load_vgg16("none", 32)
    cache = FeatureCache(tmp_path, base, "none", 32, flips=False)
    for frozen in range(N_BLOCKS + 1):
        cached = cache.activations(images, frozen)
        if frozen:
            boundary = keras.Model(base.input, base.get_layer(f"block{frozen}_pool").output)
            np.testing.assert_allclose(cached, boundary.predict(x, verbose=0), rtol=1e-4, atol=1e-3)
        suffix = build_suffix(base, frozen, 32, 10, head_units=16, dropout=0.0)
        whole = assemble(frozen_prefix(base, frozen, 32), suffix, 32)
        np.testing.assert_allclose(suffix.predict(np.asarray(cached), verbose=0),
                                   whole.predict(x, verbose=0), rtol=1e-4, atol=1e-6)


def test_each_epoch_reads_its_view_in_its_own_order_whatever_keras_prefetches():
    """Keras creates an epoch's iterator (which starts prefetching) before it calls on_epoch_end of
    the epoch before, and calls on_epoch_end once before the first: batches depend on their index
    alone, so fit reads view e % len(views) in epoch e."""
    n, batch = 64, 16
    views = [np.full((n, 2, 2, 512), v, np.float32) for v in range(2)]
    labels = np.arange(n) % 10
    batches = CachedBatches(views, labels, batch, shuffle=True, seed=1, epochs=3)
    seen = []

    class Record(keras.layers.Layer):
        def call(self, x):
            seen.append(float(keras.ops.mean(x)))
            return keras.ops.mean(x, axis=(1, 2))

        def compute_output_shape(self, shape):
            return shape[0], shape[3]

    model = keras.Sequential([keras.Input((2, 2, 512)), Record(), keras.layers.Dense(10)])
    model.compile(keras.optimizers.SGD(0.0), keras.losses.SparseCategoricalCrossentropy(True),
                  run_eagerly=True)
    model.fit(batches, steps_per_epoch=batches.batches_per_epoch, epochs=3, shuffle=False,
              verbose=0)
    assert seen == [0.0] * 4 + [1.0] * 4 + [0.0] * 4
    again = CachedBatches(views, labels, batch, shuffle=True, seed=1, epochs=3)
    orders = [np.sort(np.concatenate([again[e * 4 + i][1] for i in range(4)])) for e in range(3)]
    assert all((o == np.sort(labels)).all() for o in orders)  # each epoch: every image once
    assert not np.array_equal(again[0][1], again[4][1])  # reshuffled between epochs
    resumed = CachedBatches(views, labels, batch, shuffle=True, seed=1, epochs=2, first_epoch=1)
    assert np.array_equal(resumed[0][1], again[4][1])  # epoch 1 as in a run from the start


def test_cache_is_computed_once_and_augmented_views_differ(tmp_path):
    data = load_dataset("digits")
    images = prepare(data.x_train[:32], data.y_train[:32], 32)
    cache = FeatureCache(tmp_path, load_vgg16("none", 32), "none", 32, flips=False, views=2)
    first = cache.activations(images, 3)
    stamp = cache.path(images, 3, 0.0, 0).stat().st_mtime_ns
    again = cache.activations(images, 3)
    assert cache.path(images, 3, 0.0, 0).stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(first, again)
    assert len(cache.training_views(images, 3, 0.5, epochs=1)) == 1  # only the views read
    assert not cache.path(images, 3, 0.5, 1).exists()
    views = cache.training_views(images, 3, 0.5)
    assert len(views) == 2
    assert not np.allclose(views[0], views[1]) and not np.allclose(views[0], first)
    assert not list(tmp_path.rglob("*.tmp"))  # written, then renamed into place

    half = FeatureCache(tmp_path, cache.base, "none", 32, flips=False, dtype="float16")
    stored = half.activations(images, 3)  # a file of its own, half the size
    assert stored.dtype == np.float16 and half.path(images, 3, 0.0, 0).name.endswith("float16.npy")
    np.testing.assert_allclose(stored.astype(np.float32), first, rtol=1e-3, atol=1e-3)

    expected = np.array(first)
    del first, again  # unmapped before the file is cut
    path = cache.path(images, 3, 0.0, 0)  # a file cut short (a crash, a copy that stopped) ...
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    np.testing.assert_array_equal(cache.activations(images, 3), expected)  # ... is made again


def test_the_learning_rate_warms_up_then_holds_or_anneals(tmp_path):
    """A trial's rate rises from 0 over its first `warmup_images` and then holds; a retrain's
    (`anneal`) then falls along a cosine to 0 over the remaining steps."""
    data = load_dataset("digits")
    images = prepare(data.x_train[:100], data.y_train[:100], 32)
    cache = FeatureCache(tmp_path, load_vgg16("none", 32), "none", 32, flips=False)
    params = dict(unfrozen_blocks=0, learning_rate=1e-3, batch_size=10, augment_strength=0.0,
                  head_units=8, dropout=0.0)
    rates = {}
    for anneal in (False, True):
        log = EpochLog(100)
        train_suffix(params, cache, images, None, 10, 3, 0, [log], anneal, warmup_images=50)
        rates[anneal] = [e["learning_rate"] for e in log.epochs]  # at each epoch's first step
    # 10 steps an epoch, the first 5 warming up; annealing over the other 25: at steps 10 and 20,
    # 5/25 and 15/25 of the way.
    assert rates[False] == pytest.approx([0, 1e-3, 1e-3])
    cosine = [0.5 * (1 + np.cos(np.pi * done)) for done in (5 / 25, 15 / 25)]
    assert rates[True] == pytest.approx([0, 1e-3 * cosine[0], 1e-3 * cosine[1]])


def test_pruning_callback_refuses_a_missing_metric():
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    callback = StrictPruningCallback(trial, "val_acuracy")  # typo
    with pytest.raises(KeyError, match="val_acuracy"):
        callback.on_epoch_end(0, {"loss": 1.0, "val_accuracy": 0.5})


def test_pruning_steps_are_epochs_done_so_the_first_rung_is_one_epoch():
    """Pruners count their resource in epochs: with `min_resource=1` a trial far behind the ones
    before is stopped after its first epoch (Keras's epoch index 0), not its second."""
    study = optuna.create_study(direction="maximize", pruner=make_pruner("halving", 5))
    for value in (0.8, 0.9):  # each better than the last, so none is pruned
        leader = study.ask()
        callback = StrictPruningCallback(leader, "val_accuracy")
        for epoch in range(5):
            callback.on_epoch_end(epoch, {"val_accuracy": value})
        study.tell(leader, value)
    assert sorted(study.trials[0].intermediate_values) == [1, 2, 3, 4, 5]
    laggard = study.ask()
    with pytest.raises(optuna.TrialPruned):
        StrictPruningCallback(laggard, "val_accuracy").on_epoch_end(0, {"val_accuracy": 0.1})


def test_trials_of_equal_accuracy_rank_by_validation_loss():
    from optuna.distributions import IntDistribution
    from search.objective import trial_attrs
    from search.retrain import top_trials
    from search.study import best_trial

    log = EpochLog(n_images=10)
    log.epochs = [{"epoch": e, "loss": 0.5, "val_accuracy": acc, "val_loss": vl, "seconds": 1.0,
                   "images_per_second": 10.0}
                  for e, (acc, vl) in enumerate([(0.9, 0.3), (0.95, 0.25), (0.95, 0.2)], 1)]
    attrs = trial_attrs(log, 3.0, unfrozen_blocks=2)
    assert (attrs["best_epoch"], attrs["best_val_loss"]) == (3, 0.2)  # a tie within the trial

    study = optuna.create_study(direction="maximize")
    for blocks, value, val_loss in [(1, 0.98, 0.08), (2, 0.98, 0.05), (3, 0.97, 0.01)]:
        study.add_trial(optuna.trial.create_trial(
            params={"unfrozen_blocks": blocks}, value=value,
            distributions={"unfrozen_blocks": IntDistribution(0, 5)},
            user_attrs={"best_val_loss": val_loss}))
    assert study.best_trial.number == 0  # Optuna takes the first of a tie
    assert best_trial(study).number == 1
    assert [t.number for t in top_trials(study, 3)] == [1, 0, 2]
