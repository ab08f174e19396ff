"""A study's outputs: report.json, report.md, and the pictures people look at (curves, confusion
matrix, sample predictions), all under studies/<study>/."""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import optuna
from optuna.trial import TrialState

from search.study import MONITOR, SearchSettings, best_trial, trial_counts

if TYPE_CHECKING:  # retrain imports TensorFlow; `report` and `list` should start without it
    from search.retrain import Retrained

N_SAMPLES = 24  # test images in sample_predictions.png, mistakes first
PICTURES = """
![training images and their augmentation](preview.png)
![learning curves](learning_curves.png)
![confusion matrix](confusion_matrix.png)
![sample predictions](sample_predictions.png)
"""


def write_atomic(path: Path, text: str) -> None:
    """Write, sync, then rename: a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def write_report(out_dir: Path, study: optuna.Study, settings: SearchSettings,
                 retrained: Retrained, evaluation: dict, class_names: list[str],
                 seconds: dict, ensemble: dict | None = None,
                 confirmation: list[dict] | None = None) -> dict:
    """Write every output file; returns the report (what report.json holds). `ensemble`: the
    test accuracy of several retrained configurations' averaged probabilities, if asked;
    `confirmation`: the top configurations' reruns with other seeds (search.confirm), if asked."""
    out_dir.mkdir(parents=True, exist_ok=True)
    best = best_trial(study)
    report = {
        "study": study.study_name,
        "settings": asdict(settings),
        "trials": trial_counts(study),
        "best_trial": {"number": best.number, "value": best.value, "params": best.params,
                       "user_attrs": best.user_attrs},
        "retrain": {"trial": retrained.trial_number, "params": retrained.params,
                    "epochs": len(retrained.epochs), "images": retrained.n_images,
                    "history": retrained.epochs},
        "test": {k: evaluation[k] for k in ("test_accuracy", "test_loss", "n_test",
                                             "classification_report", "confusion_matrix",
                                             "classification_report_text")},
        "ensemble": ensemble,
        "confirmation": confirmation,
        "seconds": seconds,
        "class_names": class_names,
        "files": ["preview.png", "report.json", "report.md", "learning_curves.png", "confusion_matrix.png",
                  "sample_predictions.png", "model.keras", "model.keras.json"],
    }
    plot_learning_curves(out_dir / "learning_curves.png", study, retrained)
    plot_confusion_matrix(out_dir / "confusion_matrix.png", evaluation, class_names)
    plot_sample_predictions(out_dir / "sample_predictions.png", evaluation, class_names)
    save_report(out_dir, report)
    return report


def save_report(out_dir: Path, report: dict) -> None:
    write_atomic(out_dir / "report.json", json.dumps(report, indent=2, default=float))
    write_atomic(out_dir / "report.md", markdown(report))


def add_exports(out_dir: Path, rows: list[dict]) -> dict:
    """Keep measured exports (one row per format, the newest wins) in report.json and report.md."""
    report = json.loads((out_dir / "report.json").read_text())
    report["exports"] = {**report.get("exports", {}), **{row["format"]: row for row in rows}}
    save_report(out_dir, report)
    return report


EXPORT_COLUMNS = ["format", "size (MB)", "test accuracy", "change vs Keras",
                  "latency (ms/image, batch 1)"]


def export_cells(row: dict) -> list[str]:
    """One measured export as the cells of EXPORT_COLUMNS."""
    change = "" if row["accuracy_change"] is None else f"{row['accuracy_change']:+.4f}"
    return [row["format"], f"{row['bytes'] / 1e6:.1f}", f"{row['test_accuracy']:.4f}", change,
            f"{row['latency_ms']:.2f}"]


def export_lines(rows) -> list[str]:
    """Markdown table rows of measured exports."""
    return markdown_table(EXPORT_COLUMNS, map(export_cells, rows))


CONFIRMATION_COLUMNS = ["trial", "study's value", "with other seeds", "mean", "seconds"]


def confirmation_cells(row: dict) -> list[str]:
    """One configuration's confirmation (search.confirm) as the cells of CONFIRMATION_COLUMNS."""
    return [f"#{row['trial']}", f"{row['values'][0]:.4f}",
            ", ".join(f"{v:.4f}" for v in row["values"][1:]), f"{row['mean']:.4f}",
            f"{row['seconds']:.0f}"]


def confirmation_table(rows: list[dict]):
    """The confirmation as a rich table, best mean first."""
    from rich.table import Table

    table = Table(title="the best configurations run again with another seed (validation "
                        "accuracy at each trial's best epoch), best mean first")
    for column in CONFIRMATION_COLUMNS:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*confirmation_cells(row))
    return table


def markdown_table(columns: list[str], rows) -> list[str]:
    """Lines of a Markdown table: the first column left-aligned, the others right."""
    return ["| " + " | ".join(columns) + " |", "|---|" + "---:|" * (len(columns) - 1),
            *("| " + " | ".join(cells) + " |" for cells in rows)]


def markdown(report: dict, pictures: bool = True) -> str:
    """The report as Markdown; without `pictures` for the dashboard's note, which cannot show
    the files beside it."""
    best, test, s = report["best_trial"], report["test"], report["settings"]
    params = "\n".join(f"| {k} | {v:.3g} |" if isinstance(v, float) else f"| {k} | {v} |"
                       for k, v in best["params"].items())
    counts = ", ".join(f"{n} {state}" for state, n in report["trials"].items() if n)
    confirm_time = (f" confirmation {report['seconds']['confirm']:.0f} s,"
                    if "confirm" in report["seconds"] else "")
    return f"""# Study `{report['study']}`

Dataset `{s['dataset']}` (search subset: {s['subset'] or 'all'}, validation {s['val_fraction']:.0%}),
images {s['image_size']} px, weights `{s['weights']}`, up to {s['epochs']} epochs a trial.
Trials: {counts}. Wall time: search {report['seconds'].get('search', 0):.0f} s,{confirm_time}
retrain + evaluation {report['seconds'].get('retrain', 0):.0f} s.

## Best trial: #{best['number']}, validation accuracy {best['value']:.4f}

| parameter | value |
|---|---|
{params}

## Test set ({test['n_test']} images), after retraining on {report['retrain']['images']} images for {report['retrain']['epochs']} epochs

**Accuracy {test['test_accuracy']:.4f}**, loss {test['test_loss']:.4f}

```
{test['classification_report_text']}```
{extra_sections(report)}{PICTURES if pictures else ""}"""


def extra_sections(report: dict) -> str:
    """The confirmation, the ensemble and the measured exports, when there are any."""
    text = ""
    if report.get("confirmation"):
        rows = report["confirmation"]
        text += (f"\n## Confirmation: the {len(rows)} best configurations run again with another "
                 f"seed\n\nRetrained: #{report['retrain']['trial']}, the best mean validation "
                 "accuracy at the trial's best epoch.\n\n"
                 + "\n".join(markdown_table(CONFIRMATION_COLUMNS, map(confirmation_cells, rows)))
                 + "\n")
    if report.get("ensemble"):
        e = report["ensemble"]
        members = ", ".join(f"#{n} {a:.4f}" for n, a in zip(e["trials"], e["member_test_accuracy"]))
        text += (f"\n## Ensemble of {len(e['trials'])} configurations (averaged probabilities)\n\n"
                 f"**Test accuracy {e['test_accuracy']:.4f}** (members: {members})\n")
    if report.get("exports"):
        lines = export_lines(report["exports"].values())
        text += ("\n## Exports, evaluated from their own files on the test set\n\n"
                 + "\n".join(lines) + "\n")
    return text


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(path: Path, study: optuna.Study, retrained: Retrained) -> None:
    """Left: validation accuracy per epoch of every trial (pruned ones dashed, the retrained one bold).
    Right: the retrain's training loss and accuracy per epoch."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        epochs = sorted(t.intermediate_values)  # steps are epochs done
        values = [t.intermediate_values[e] for e in epochs]
        if t.number == retrained.trial_number:
            left.plot(epochs, values, "-o", color="C3", lw=2.5, label=f"retrained (#{t.number})",
                      zorder=3)
        elif t.state == TrialState.PRUNED:
            left.plot(epochs, values, "--x", color="grey", alpha=0.6, lw=1)
        else:
            left.plot(epochs, values, "-", color="C0", alpha=0.5, lw=1)
    left.plot([], [], "--x", color="grey", label="pruned")
    left.plot([], [], "-", color="C0", label="completed")
    left.set(title=f"search: {MONITOR} per epoch", xlabel="epoch", ylabel=MONITOR)
    left.legend(loc="lower right")
    epochs = range(1, len(retrained.epochs) + 1)
    right.plot(epochs, [e["loss"] for e in retrained.epochs], "-o", color="C1", label="loss")
    right.set(title=f"retrain of trial #{retrained.trial_number}", xlabel="epoch", ylabel="loss")
    acc = right.twinx()
    acc.plot(epochs, [e["accuracy"] for e in retrained.epochs], "-s", color="C2", label="accuracy")
    acc.set_ylabel("training accuracy")
    lines = right.get_lines() + acc.get_lines()
    right.legend(lines, [line.get_label() for line in lines], loc="center right")
    for ax in (left, right):
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_confusion_matrix(path: Path, evaluation: dict, class_names: list[str]) -> None:
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    size = max(5, 0.45 * len(class_names))
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(np.array(evaluation["confusion_matrix"]),
                           display_labels=class_names).plot(
        ax=ax, cmap="Blues", colorbar=False, xticks_rotation="vertical",
        include_values=len(class_names) <= 20)
    ax.set_title(f"test accuracy {evaluation['test_accuracy']:.4f}")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_sample_predictions(path: Path, evaluation: dict, class_names: list[str]) -> None:
    """Test images with predicted and true labels; mistakes (red) first. The images are one mosaic
    with a caption over each: one axes, not one per image (2.2 s -> 0.4 s on a 2 GHz Xeon)."""
    from search.preview import GAP, mosaic

    plt = _pyplot()
    y, predicted, x = evaluation["y_test"], evaluation["predicted"], evaluation["x_test"]
    wrong = np.flatnonzero(predicted != y)
    right = np.flatnonzero(predicted == y)
    shown = np.concatenate([wrong[:N_SAMPLES // 2], right])[:N_SAMPLES]
    images = x[shown] if x.ndim == 4 else x[shown][..., None]
    images = np.broadcast_to(images, (*images.shape[:3], 3))  # grey: the same in 3 channels
    cols = 8
    rows = -(-len(shown) // cols)
    blank = np.full((rows * cols - len(shown), *images.shape[1:]), 255, np.uint8)
    height, width = images.shape[1:3]
    top = round(0.35 * (width + GAP))  # two lines of caption at this figure's scale
    grid = mosaic(np.concatenate([images, blank]).reshape(rows, cols, height, width, 3), top)
    fig, ax = plt.subplots(figsize=(cols * 1.4, grid.shape[0] / grid.shape[1] * cols * 1.4 + 0.5))
    ax.imshow(grid)
    ax.axis("off")
    for k, i in enumerate(shown):
        row, col = divmod(k, cols)
        ok = predicted[i] == y[i]
        ax.text(col * (width + GAP) + width / 2, row * (top + height + GAP) + top - 1,
                f"{class_names[predicted[i]]}" + ("" if ok else f"\n(true {class_names[y[i]]})"),
                color="green" if ok else "red", fontsize=8, ha="center", va="bottom")
    fig.suptitle("sample test predictions (red: mistakes)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
