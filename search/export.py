"""Export the retrained best model. Its preprocessing and class names travel beside it as JSON."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from search.errors import UserError

FORMATS = ("keras",)


def save_model(model, out_dir: Path, class_names: list[str], image_size: int, params: dict) -> Path:
    """model.keras (VGG16 inputs -> probabilities) and model.json (how to feed it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.keras"
    tmp = out_dir / "model.tmp.keras"
    model.save(tmp)
    tmp.replace(path)
    meta = {"class_names": class_names, "image_size": image_size,
            "preprocessing": "grey->RGB, resize to image_size, keras.applications.vgg16."
                             "preprocess_input", "params": params}
    (out_dir / "model.json").write_text(json.dumps(meta, indent=2))
    return path


def export(study_dir: Path, fmt: str, out: Path | None = None) -> Path:
    """Copy the study's retrained model (and its model.json) to `out` in format `fmt`."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    model = study_dir / "model.keras"
    if not model.is_file():
        raise UserError(f"{study_dir.name} has no retrained model ({model} is missing); "
                        "run: python cli.py retrain --study " + study_dir.name)
    out = Path(out) if out else study_dir / "export" / f"{study_dir.name}.keras"
    if out.suffix != ".keras":
        raise UserError(f"a keras export needs a path ending in .keras, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, out)
    shutil.copyfile(study_dir / "model.json", out.with_suffix(".json"))
    return out
