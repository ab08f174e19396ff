"""Export the retrained best model in the formats deployments use, and measure what each costs.

    keras        the .keras file itself
    savedmodel   a TensorFlow SavedModel folder (`model.export`), servable by TF Serving
    tflite       TFLite float32
    tflite-int8  TFLite full-integer post-training quantization (int8 weights, activations, input
                 and output), calibrated on training images, never on the test set

Each export is then loaded from its own file and evaluated on the test set; the table of format,
size, test accuracy, its change against the Keras model, and latency per image is kept in the
study's report.json.
"""
from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from search.errors import UserError
from search.exported import load_exported, read_meta, write_meta
from search.preprocess import to_rgb, vgg16_inputs

FORMATS = ("keras", "savedmodel", "tflite", "tflite-int8")
SUFFIXES = {"keras": ".keras", "savedmodel": "", "tflite": ".tflite", "tflite-int8": ".tflite"}
CALIBRATION_IMAGES = 200  # representative training images for the int8 quantization ranges
LATENCY_IMAGES = 30  # timed single-image predictions (after warm-up) per format


def save_model(model, out_dir: Path, class_names: list[str], image_size: int, params: dict) -> Path:
    """The study's model.keras (VGG16 inputs -> probabilities) and its sidecar JSON."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.keras"
    tmp = out_dir / "model.tmp.keras"
    model.save(tmp)
    tmp.replace(path)
    write_meta(path, {"class_names": class_names, "image_size": image_size,
                      "preprocessing": "grey->RGB, resize to image_size (bilinear), "
                                       "keras.applications.vgg16.preprocess_input",
                      "params": params, "format": "keras"})
    return path


def default_out(study_dir: Path, fmt: str) -> Path:
    name = study_dir.name + ("" if fmt == "keras" else "_" + fmt.replace("-", "_"))
    return study_dir / "export" / (name + SUFFIXES[fmt])


def export(study_dir: Path, fmt: str, out: Path | None = None,
           calibration: np.ndarray | None = None) -> Path:
    """Write the study's retrained model to `out` in format `fmt`, with its sidecar JSON.
    `calibration`: raw training images for tflite-int8 (as the dataset stores them)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    source = study_dir / "model.keras"
    if not source.is_file():
        raise UserError(f"{study_dir.name} has no retrained model ({source} is missing); "
                        "run: python cli.py retrain --study " + study_dir.name)
    out = Path(out) if out else default_out(study_dir, fmt)
    if out.suffix != SUFFIXES[fmt]:
        raise UserError(f"a {fmt} export needs a path ending in '{SUFFIXES[fmt] or 'no suffix'}'"
                        f", got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = read_meta(source)
    # Write beside the target, then rename: a crash never leaves a half-written export in place.
    tmp = out.with_name(f".{out.name}.tmp")
    _remove(tmp)
    if fmt == "keras":
        shutil.copyfile(source, tmp)
    else:
        import keras

        model = keras.models.load_model(source, compile=False)
        if fmt == "savedmodel":
            _quietly(model.export, str(tmp), verbose=False)
        else:
            tmp.write_bytes(_tflite(model, meta["image_size"],
                                    calibration if fmt == "tflite-int8" else None))
    _remove(out)
    tmp.rename(out)
    write_meta(out, {**meta, "format": fmt})
    return out


def _tflite(model, image_size: int, calibration: np.ndarray | None) -> bytes:
    """TFLite flatbuffer of `model`; full-integer int8 when calibration images are given."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as saved:
        _quietly(model.export, saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        if calibration is not None:
            inputs = vgg16_inputs(to_rgb(calibration, image_size))
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([x[None]] for x in inputs)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        return _quietly(converter.convert)


def _quietly(fn, *args, **kwargs):
    """TensorFlow's exporters print pages of tensor specs to stdout: keep the terminal readable."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def size_bytes(path: Path) -> int:
    files = path.rglob("*") if path.is_dir() else [path]
    return sum(f.stat().st_size for f in files if f.is_file())


def measure(path: Path, data, keras_accuracy: float | None, progress=None) -> dict:
    """Load the export from its own file, evaluate it on the test set, time single images."""
    from search.retrain import evaluate

    model = load_exported(path)
    evaluation = evaluate(model, data, model.image_size, progress)
    x_test, _ = data.test_set()
    latency = latency_ms(model, vgg16_inputs(to_rgb(x_test[:LATENCY_IMAGES], model.image_size)))
    accuracy = evaluation["test_accuracy"]
    return {"format": model.meta["format"], "path": str(path), "bytes": size_bytes(path),
            "test_accuracy": accuracy,
            "accuracy_change": None if keras_accuracy is None else accuracy - keras_accuracy,
            "latency_ms": latency, "n_test": evaluation["n_test"]}


def latency_ms(model, inputs: np.ndarray) -> float:
    """Median milliseconds of one prediction at batch 1, after three warm-up calls."""
    for x in inputs[:3]:
        model(x[None])
    times = []
    for x in inputs:
        started = time.perf_counter()
        model(x[None])
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))

