"""Look at the data: a few images of every class as the model sees them (resized, 3 channels, shown
before VGG16's mean subtraction), and the same images through the augmentation the search uses at
each strength, side by side. Written at the start of every search and by `cli.py preview`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.data import Dataset
from search.preprocess import augmenter, to_rgb

PER_CLASS = 4  # images of each class in each panel
GAP = 2  # white pixels between two images of a panel


@dataclass
class Preview:
    """panels[strength]: (classes, PER_CLASS, S, S, 3) RGB 0..255; strength 0.0 is the original."""

    panels: dict
    class_names: list[str]
    path: Path


def preview(data: Dataset, strengths, out: Path, image_size: int = 32, per_class: int = PER_CLASS,
            seed: int = 0) -> Preview:
    """Pick `per_class` random training images of each class, augment them at each strength, and
    draw originals and augmented panels side by side into `out` (PNG)."""
    import keras

    rng = np.random.default_rng(seed)
    n_classes = len(data.class_names)
    picks = [rng.choice(np.flatnonzero(data.y_train == c), per_class,
                        replace=np.sum(data.y_train == c) < per_class)
             if np.any(data.y_train == c) else None for c in range(n_classes)]
    present = [c for c in range(n_classes) if picks[c] is not None]
    images = to_rgb(data.x_train[np.concatenate([picks[c] for c in present])], image_size)
    panels = {0.0: images}
    for strength in sorted({float(s) for s in strengths} - {0.0}):
        # The same pipeline the cache applies to training images at this strength.
        panels[strength] = keras.ops.convert_to_numpy(
            augmenter(strength, data.flips_keep_label, seed)(images, training=True))
    shape = (len(present), per_class, image_size, image_size, 3)
    panels = {s: p.reshape(shape) for s, p in panels.items()}
    names = [data.class_names[c] for c in present]
    draw(panels, names, out, data.name)
    return Preview(panels, names, out)


def draw(panels: dict, class_names: list[str], out: Path, title: str) -> None:
    """One picture per panel (a mosaic of its rows and columns of images) side by side: a few
    axes, not one per image, so that drawing takes a fraction of a second at the start of a search."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, per_class, size = next(iter(panels.values())).shape[:3]
    step = size + GAP
    fig, axes = plt.subplots(1, len(panels), squeeze=False, layout="constrained",
                             figsize=(per_class * len(panels) * 0.9 + 1.2, rows * 0.9 + 0.6))
    for ax, (strength, panel) in zip(axes[0], panels.items()):
        ax.imshow(mosaic(panel))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("original" if strength == 0 else f"augmentation {strength:g}", fontsize=8,
                     loc="left")
    axes[0, 0].set_yticks(np.arange(rows) * step + size / 2, class_names, fontsize=8)
    fig.suptitle(f"{title}: {per_class} images per class", fontsize=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=60)
    plt.close(fig)


def mosaic(panel: np.ndarray, top: int = 0) -> np.ndarray:
    """(rows, columns, H, W, 3) images -> one uint8 image of them in a grid, GAP white pixels apart
    and `top` white pixels above each (room for a caption)."""
    rows, columns, height, width = panel.shape[:4]
    tiles = np.pad(np.clip(panel, 0, 255).astype(np.uint8),
                   ((0, 0), (0, 0), (top, GAP), (0, GAP), (0, 0)), constant_values=255)
    grid = tiles.transpose(0, 2, 1, 3, 4).reshape(rows * (top + height + GAP),
                                                  columns * (width + GAP), 3)
    return grid[:-GAP, :-GAP]
