"""Classify new image files with an exported model, preprocessed exactly as in training."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.errors import UserError
from search.exported import load_exported
from search.retrain import predict


@dataclass
class Prediction:
    image: Path
    class_name: str
    probability: float


def image_files(paths: list) -> list[Path]:
    """The files given, and every file inside the folders given (sorted, hidden ones skipped)."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(f for f in path.rglob("*") if f.is_file()
                            and not any(part.startswith(".") for part in f.relative_to(path).parts))
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"image not found: {path}")
    if not files:
        raise UserError(f"no image files in {', '.join(map(str, paths))}")
    return files


def read_image(file: Path) -> np.ndarray:
    """uint8 RGB as the dataset loaders keep it (grey repeated to 3 channels, like training)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"{file}: not a readable image ({type(err).__name__})") from err


def predict_files(model_path, paths: list) -> list[Prediction]:
    model = load_exported(model_path)
    files = image_files(paths)
    # One image at a time: files may have different sizes; each is resized as training resized.
    probs = np.concatenate([predict(model, read_image(f)[None], model.image_size) for f in files])
    return [Prediction(f, model.class_names[int(p.argmax())], float(p.max()))
            for f, p in zip(files, probs)]
