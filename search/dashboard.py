"""What optuna-dashboard shows of a study, written by vggsearch: a Markdown note (the settings
at the start; the whole report once retrained) and the retrained best model's files as Optuna
artifacts."""
from __future__ import annotations

from pathlib import Path

import optuna

from search.study import SearchSettings

ARTIFACT_FILES = ["model.keras", "report.json", "learning_curves.png", "confusion_matrix.png",
                  "sample_predictions.png", "preview.png"]
MIMETYPES = {".png": "image/png", ".json": "application/json", ".keras": "application/zip"}


def artifact_store(studies_dir) -> optuna.artifacts.FileSystemArtifactStore:
    """Artifacts live beside the studies: `<studies-dir>/artifacts/` (the dashboard reads it)."""
    path = Path(studies_dir) / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(str(path))


def serve_in_background(storage_url: str, studies_dir, host: str, port: int):
    """optuna-dashboard in a daemon thread of this process: returns (its URL, the thread). During
    a search the trials run in worker processes, so it does not slow them; `cli.py dashboard`
    waits on the thread, so that Ctrl-C reaches the main thread and never a request being
    answered (wsgiref logs an exception raised there, KeyboardInterrupt included, and serves on)."""
    import socket
    import threading

    from optuna_dashboard import run_server

    from search.errors import UserError
    from search.study import connect

    with socket.socket() as probe:  # a taken port is a clear error now, not a thread's traceback
        try:
            probe.bind((host, port))
        except OSError as err:
            raise UserError(f"cannot serve the dashboard on {host}:{port}: {err.strerror}") from None
    server = threading.Thread(target=run_server, args=(connect(storage_url),), daemon=True,
                              kwargs={"host": host, "port": port,
                                      "artifact_store": artifact_store(studies_dir)})
    server.start()
    return f"http://{host}:{port}/", server


def note_settings(study: optuna.Study, settings: SearchSettings, trials: int) -> None:
    """The study's note before it has results: what it searches, on what, with what budget."""
    from optuna_dashboard import save_note

    rows = "\n".join(f"| {name} | {_spec(spec)} |" for name, spec in settings.space.items())
    save_note(study, f"""# vggsearch study `{study.study_name}`

Dataset `{settings.dataset}` (search subset: {settings.subset or 'all'}, validation
{settings.val_fraction:.0%}), {settings.image_size} px, weights `{settings.weights}`.
Budget: {trials} finished trials of at most {settings.epochs} epochs each.

| parameter | range |
|---|---|
{rows}

Not retrained yet: the test accuracy and classification report appear here once it is.
""")


def note_report(study: optuna.Study, report_markdown: str) -> None:
    """The study's note once retrained: the report, test accuracy and classification report."""
    from optuna_dashboard import save_note

    save_note(study, report_markdown)


def upload_best(study: optuna.Study, out_dir: Path, studies_dir) -> list[str]:
    """The retrained best model, its report and pictures, as the study's artifacts (Optuna
    refuses to attach files to a trial once it has finished)."""
    store = artifact_store(studies_dir)
    uploaded = []
    for name in ARTIFACT_FILES:
        path = out_dir / name
        if path.is_file():
            optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(path),
                                             study_or_trial=study,
                                             mimetype=MIMETYPES.get(path.suffix))
            uploaded.append(name)
    return uploaded


def _spec(spec: dict) -> str:
    if spec["type"] == "categorical":
        return ", ".join(map(str, spec["choices"]))
    return f"{spec['low']} to {spec['high']}" + (" (log)" if spec.get("log") else "")
