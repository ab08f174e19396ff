"""One self-contained HTML page of a study: Optuna's interactive plots (plotly, inlined, so it opens
without a network), the top trials, and, once retrained, the test metrics and the pictures."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import optuna

from search.report import (CONFIRMATION_COLUMNS, EXPORT_COLUMNS, confirmation_cells,
                           export_cells, write_atomic)
from search.study import FINISHED, ranked_trials

PICTURES = [("learning_curves.png", "Validation accuracy per epoch (pruned trials dashed)"),
            ("confusion_matrix.png", "Confusion matrix on the test set"),
            ("sample_predictions.png", "Sample test predictions, mistakes first (red)"),
            ("preview.png", "Training images and their augmentation")]


def write_html(study: optuna.Study, out_dir: Path, path: Path, top: int = 10) -> Path:
    report_file = out_dir / "report.json"
    report = json.loads(report_file.read_text()) if report_file.is_file() else None
    sections = [f"<h1>vggsearch study <code>{html.escape(study.study_name)}</code></h1>",
                _plots(study), _top_trials(study, top)]
    if report:
        sections.append(_test_results(report))
    sections += [f"<h2>{caption}</h2>{_png(out_dir / name, caption)}"
                 for name, caption in PICTURES if (out_dir / name).is_file()]
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(study.study_name)} · vggsearch</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}} img{{max-width:100%}}</style>
</head><body>
{chr(10).join(sections)}
</body></html>
"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, page)
    return path


def _plots(study: optuna.Study) -> str:
    """Optuna's plots; the first carries plotly.js inline, the others reuse it."""
    from optuna import visualization as vis

    makers = [vis.plot_optimization_history, vis.plot_param_importances,
              vis.plot_parallel_coordinate, vis.plot_intermediate_values]
    parts, inlined = [], False
    for make in makers:
        try:
            figure = make(study)
        except (ValueError, RuntimeError) as err:  # e.g. importances need two completed trials
            parts.append(f"<p>{make.__name__}: {html.escape(str(err))}</p>")
            continue
        parts.append(figure.to_html(full_html=False, include_plotlyjs=not inlined))
        inlined = True
    return "\n".join(parts)


def _top_trials(study: optuna.Study, top: int) -> str:
    ranked = ranked_trials(study, FINISHED)[:top]
    names = sorted({name for t in ranked for name in t.params})
    rows = [[str(t.number), t.state.name.lower(), f"{t.value:.4f}",
             *(f"{t.params[n]:.3g}" if isinstance(t.params.get(n), float)
               else str(t.params.get(n, "")) for n in names)] for t in ranked]
    return f"<h2>Top {len(ranked)} trials</h2>{_table(['#', 'state', 'value', *names], rows)}"


def _table(head: list[str], rows: list[list[str]]) -> str:
    def row(tag: str, cells: list[str]) -> str:
        return "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>"
    return "<table>" + row("th", head) + "".join(row("td", r) for r in rows) + "</table>"


def _test_results(report: dict) -> str:
    test = report["test"]
    text = test.get("classification_report_text", "")
    extra = ""
    if report.get("confirmation"):
        rows = [confirmation_cells(r) for r in report["confirmation"]]
        extra += (f"<h3>Confirmation: the best configurations run again with another seed "
                  f"(retrained: #{report['retrain']['trial']})</h3>"
                  + _table(CONFIRMATION_COLUMNS, rows))
    if report.get("ensemble"):
        extra += (f"<p>Ensemble of trials {report['ensemble']['trials']} (averaged probabilities): "
                 f"test accuracy <b>{report['ensemble']['test_accuracy']:.4f}</b></p>")
    if report.get("exports"):
        rows = [export_cells(r) for r in report["exports"].values()]
        extra += ("<h3>Exports, evaluated from their own files on the test set</h3>"
                  + _table(EXPORT_COLUMNS, rows))
    return (f"<h2>Test set ({test['n_test']} images)</h2><p>Accuracy "
            f"<b>{test['test_accuracy']:.4f}</b>, loss {test['test_loss']:.4f}</p>{extra}"
            f"<pre>{html.escape(text)}</pre>")


def _png(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
