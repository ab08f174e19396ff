"""Load an exported model of any format and run it: VGG16 inputs -> class probabilities.

Every export has a sidecar JSON (`<path>.json`) with its class names and preprocessing settings, so
`predict` feeds new images exactly as training did, whatever the format.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from search.errors import UserError
from search.report import write_atomic


def meta_path(model_path: Path) -> Path:
    """The sidecar of `model.keras` is `model.keras.json`, of a SavedModel folder `folder.json`."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".json")


def write_meta(model_path: Path, meta: dict) -> Path:
    path = meta_path(model_path)
    write_atomic(path, json.dumps(meta, indent=2))
    return path


def read_meta(model_path: Path) -> dict:
    """The sidecar's settings, checked to have what prediction needs."""
    try:
        meta = json.loads(meta_path(model_path).read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{meta_path(model_path)}: missing or unreadable settings of "
                        f"{Path(model_path).name} (export writes it beside the model; "
                        f"{type(err).__name__})") from None
    if not isinstance(meta, dict) or not {"class_names", "image_size"} <= meta.keys():
        raise UserError(f"{meta_path(model_path)}: needs class_names and image_size")
    return meta


class ExportedModel:
    """A callable over batches of VGG16 inputs (float32, N x S x S x 3) returning probabilities."""

    def __init__(self, path: Path, meta: dict, forward):
        self.path, self.meta, self._forward = path, meta, forward

    @property
    def class_names(self) -> list[str]:
        return self.meta["class_names"]

    @property
    def image_size(self) -> int:
        return self.meta["image_size"]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._forward(np.asarray(batch, np.float32)), np.float32)


def load_exported(path) -> ExportedModel:
    """`path` is a .keras file, a SavedModel folder or a .tflite file, with its sidecar JSON."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"model not found: {path}")
    meta = read_meta(path)
    try:
        if path.is_dir():
            forward = _savedmodel(path)
        elif path.suffix == ".tflite":
            forward = TFLiteRunner(path)
        elif path.suffix == ".keras":
            forward = _keras(path)
        else:
            raise UserError(f"{path}: not a .keras file, SavedModel folder or .tflite file")
    except UserError:
        raise
    except Exception as err:  # TensorFlow, TFLite and zip readers raise many kinds on bad files
        raise UserError(f"{path}: not a loadable model ({type(err).__name__})") from err
    return ExportedModel(path, meta, forward)


def _keras(path: Path):
    import keras

    model = keras.models.load_model(path, compile=False)
    return lambda batch: model(batch, training=False)


def _savedmodel(path: Path):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))  # held by the closure: it owns the variables
    return lambda batch: loaded.serve(tf.constant(batch))  # the endpoint `model.export` writes


class TFLiteRunner:
    """LiteRT's interpreter, resized to each batch; int8 models are fed and read through their
    tensors' quantization (scale, zero point)."""

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=os.cpu_count())
        self.input = self.interpreter.get_input_details()[0]
        self.batch = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        it = self.interpreter
        if len(batch) != self.batch:
            it.resize_tensor_input(self.input["index"], [len(batch), *self.input["shape"][1:]])
            it.allocate_tensors()
            self.batch = len(batch)
        if self.input["dtype"] == np.int8:
            scale, zero = self.input["quantization"]
            batch = np.clip(np.round(batch / scale + zero), -128, 127).astype(np.int8)
        it.set_tensor(self.input["index"], batch)
        it.invoke()
        output = it.get_output_details()[0]
        probs = it.get_tensor(output["index"])
        if output["dtype"] == np.int8:
            scale, zero = output["quantization"]
            probs = (probs.astype(np.float32) - zero) * scale
        return probs
