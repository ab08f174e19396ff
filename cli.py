"""vggsearch command line: a thin layer over search.pipeline and friends.

    python cli.py search --dataset mnist --trials 50     # study, pruning, retrain, test report
    python cli.py dashboard                              # optuna-dashboard on the same storage
    python cli.py export --study mnist --format all      # keras, SavedModel, TFLite, int8, measured
    python cli.py predict --model studies/mnist/export/mnist.keras digit.png

Mistakes a user can make print one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import search  # noqa: F401  (sets TensorFlow's environment before anything imports it)
from search.errors import ReportedError, UserError
from search.interrupt import graceful
from search.progress import console

STUDIES_DIR = "studies"


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and status 2, like every other user error
        raise UserError(f"{self.prog}: {message}")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def subset_arg(text: str):
    return "all" if text == "all" else positive_int(text)


def add_storage(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///studies/vggsearch.db)")
    p.add_argument("--studies-dir", default=STUDIES_DIR,
                   help="folder of the default storage and of each study's outputs")


def add_retrain_options(p: argparse.ArgumentParser) -> None:
    from search.study import DEFAULT_CONFIRM_TOP

    p.add_argument("--retrain-epochs", type=positive_int,
                   help="epochs of the retrain (default: the best trial's best epoch, at most "
                        "as many as pass 120 000 images: 2 on MNIST)")
    p.add_argument("--retrain-subset", type=subset_arg, default="all",
                   help="training images of the retrain: N (stratified) or 'all' (default: all, "
                        "whatever --subset the search used)")
    p.add_argument("--cache-dir", help="activation cache (default: <studies-dir>/cache)")
    p.add_argument("--ensemble", type=positive_int, default=1, metavar="K",
                   help="also retrain the next K-1 distinct configurations and report the test "
                        "accuracy of their averaged probabilities beside the best one's")
    p.add_argument("--confirm", type=int, default=DEFAULT_CONFIRM_TOP, metavar="K",
                   help="before the retrain, train the K best configurations again with another "
                        "seed on the search's images and retrain the best mean over both seeds "
                        f"(default: {DEFAULT_CONFIRM_TOP}; 0: off; search.confirm)")


def add_search_options(p: argparse.ArgumentParser) -> None:
    from search.space import DEFAULT_SPACE
    from search.study import DEFAULT_EPOCHS, DEFAULT_SUBSET, DEFAULT_VAL_FRACTION, PRUNERS, TUNERS
    from search.worker import DEFAULT_MEMORY_LIMIT_MB

    p.add_argument("--dataset", default="mnist",
                   help="mnist, fashion_mnist, cifar10, cifar100, digits, a folder of class "
                        "sub-folders, or an .npz (x_train, y_train, x_test, y_test)")
    p.add_argument("--trials", type=int, default=50,
                   help="finished trials the study should have (re-running resumes)")
    p.add_argument("--space", default=str(DEFAULT_SPACE), help="search space TOML file")
    p.add_argument("--subset", type=subset_arg, default=DEFAULT_SUBSET,
                   help="training images the search ranks configurations on, validation share "
                        f"included: N (stratified) or 'all' (default: {DEFAULT_SUBSET}; the "
                        "retrain uses all)")
    p.add_argument("--image-size", type=int, default=32, help="side in pixels (at least 32)")
    p.add_argument("--weights", default="imagenet",
                   help="imagenet, none (random), or the path of a VGG16 notop .h5 file")
    p.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                   help="stratified validation share of the training images")
    p.add_argument("--epochs", type=positive_int, default=DEFAULT_EPOCHS,
                   help="most epochs a trial trains (the pruners' resource)")
    p.add_argument("--pruner", choices=PRUNERS, default="hyperband",
                   help="Optuna's pruner (engine optuna)")
    p.add_argument("--tuner", choices=TUNERS, default="hyperband",
                   help="KerasTuner's tuner (engine keras-tuner)")
    p.add_argument("--seed", type=int, help="seed of the sampler and of training")
    p.add_argument("--no-retrain", action="store_true", help="stop after the search")
    p.add_argument("--worker-memory-mb", type=positive_int, default=DEFAULT_MEMORY_LIMIT_MB,
                   help="trials run in a worker process, replaced by a fresh one when its memory "
                        "passes this after a trial (a bound on what a library may keep between "
                        "trials; search.memory frees what TensorFlow 2.21 keeps)")
    add_retrain_options(p)
    add_storage(p)


def build_parser() -> argparse.ArgumentParser:
    from search.export import FORMATS

    parser = Parser(prog="cli.py", description="Optuna search over VGG16 transfer learning.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = commands.add_parser("search", help="run or resume a study, then retrain and report")
    add_search_options(p)
    p.add_argument("--study", help="study name (default: from the dataset)")
    p.add_argument("--engine", choices=["optuna", "keras-tuner"], default="optuna",
                   help="Optuna's TPE sampler and --pruner, or KerasTuner's --tuner")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="worker processes running trials side by side on this host (needs a "
                        "shared storage: --storage journal:///FILE, postgresql://, redis://)")
    p.add_argument("--dashboard", action="store_true",
                   help="serve optuna-dashboard on the study's storage while the search runs")
    p.add_argument("--dashboard-port", type=int, default=8080)

    p = commands.add_parser("compare", help="search and retrain with Optuna and with KerasTuner "
                                            "on the same budget; print both side by side")
    add_search_options(p)

    p = commands.add_parser("retrain", help="retrain a study's best trial, test it, write reports")
    p.add_argument("--study", required=True)
    add_retrain_options(p)
    add_storage(p)

    p = commands.add_parser("report", help="top trials, best parameters and test metrics")
    p.add_argument("--study", required=True)
    p.add_argument("--top", type=positive_int, default=10, help="how many trials to list")
    p.add_argument("--html", metavar="FILE", help="also write one self-contained HTML page: "
                   "Optuna's plots, top trials, test metrics and pictures")
    add_storage(p)

    p = commands.add_parser("export", help="write the retrained best model in deployment formats "
                                           "and measure each on the test set")
    p.add_argument("--study", required=True)
    p.add_argument("--format", nargs="+", default=["keras"], choices=[*FORMATS, "all"],
                   help="one or more formats, or all")
    p.add_argument("--out", help="output path of a single format (default: "
                                 "studies/<study>/export/<study>[_<format>].<suffix>)")
    add_storage(p)

    p = commands.add_parser("predict", help="classify image files with an exported model")
    p.add_argument("--model", required=True, help=".keras file, SavedModel folder or .tflite file")
    p.add_argument("images", nargs="+", help="image files or folders of them")

    p = commands.add_parser("dashboard", help="start optuna-dashboard on the study storage")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    add_storage(p)

    p = commands.add_parser("preview", help="a PNG of images per class and their augmentation")
    p.add_argument("--dataset", default="mnist", help="as for search")
    p.add_argument("--strength", type=float, nargs="*", default=[0.25, 0.5],
                   help="augmentation strengths to show beside the originals (0..1)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--out", help="PNG path (default: studies/preview-<dataset>.png)")

    p = commands.add_parser("list", help="studies in a storage")
    add_storage(p)
    return parser


def storage_url(args) -> str:
    from search.study import default_storage

    return args.storage or default_storage(args.studies_dir)


def cmd_search(args) -> None:
    from search.pipeline import run_search

    if args.dashboard:
        from search.dashboard import serve_in_background

        url, _ = serve_in_background(storage_url(args), args.studies_dir, "127.0.0.1",
                                     args.dashboard_port)
        console.print(f"optuna-dashboard (while this search runs): {url}")
    keras_tuner = args.tuner if args.engine == "keras-tuner" else None
    with graceful():
        run_search(args.dataset, args.trials, study_name=args.study, keras_tuner=keras_tuner,
                   workers=args.workers, **search_options(args))


def search_options(args) -> dict:
    """`run_search`'s keyword arguments from the options search and compare share."""
    return dict(storage=args.storage, studies_dir=args.studies_dir, space=args.space,
                subset=args.subset, image_size=args.image_size, weights=args.weights,
                val_fraction=args.val_fraction, epochs=args.epochs, pruner=args.pruner,
                seed=args.seed, do_retrain=not args.no_retrain,
                retrain_epochs=args.retrain_epochs, retrain_subset=args.retrain_subset,
                cache_dir=args.cache_dir, ensemble=args.ensemble, confirm_top=args.confirm,
                memory_limit_mb=args.worker_memory_mb)


def cmd_compare(args) -> None:
    from rich.table import Table

    from search.pipeline import compare_engines

    with graceful():
        rows = compare_engines(args.dataset, args.trials, args.tuner, **search_options(args))
    table = Table(title=f"{args.trials} trials each on {args.dataset} (studies: "
                        f"{', '.join(r['study'] for r in rows)})")
    for column in ["engine", "best val", "test", "search s", "retrain s", "complete", "pruned",
                   "failed"]:
        table.add_column(column, justify="right")
    for r in rows:
        test = "-" if r["test_accuracy"] is None else f"{r['test_accuracy']:.4f}"
        table.add_row(r["engine"], f"{r['best_value']:.4f}", test,
                      f"{r['search_seconds']:.0f}", f"{r['retrain_seconds']:.0f}",
                      str(r["complete"]), str(r["pruned"]), str(r["fail"]))
    console.print(table)


def cmd_retrain(args) -> None:
    from search.pipeline import retrain_study

    with graceful():
        retrain_study(args.study, storage=args.storage, studies_dir=args.studies_dir,
                      epochs=args.retrain_epochs, subset=args.retrain_subset,
                      cache_dir=args.cache_dir, ensemble=args.ensemble,
                      confirm_top=args.confirm)


def cmd_report(args) -> None:
    from rich.table import Table

    from search.report import confirmation_table
    from search.study import FINISHED, connect, load_study, ranked_trials, trial_counts

    study, settings = load_study(connect(storage_url(args)), args.study)
    counts = ", ".join(f"{n} {s}" for s, n in trial_counts(study).items() if n)
    console.print(f"study {study.study_name} on {settings.dataset}: {counts}")
    ranked = ranked_trials(study, FINISHED)[:args.top]
    names = list(settings.space)
    table = Table(title=f"top {len(ranked)} trials")
    for column in ["#", "state", "val_accuracy", "val_loss", "epochs", "s", *names]:
        table.add_column(column, justify="right")
    for t in ranked:
        table.add_row(str(t.number), t.state.name.lower(), f"{t.value:.4f}",
                      str(t.user_attrs.get("best_val_loss", "")),
                      str(t.user_attrs.get("epochs_run", "")), str(t.user_attrs.get("seconds", "")),
                      *(f"{t.params.get(n):.3g}" if isinstance(t.params.get(n), float)
                        else str(t.params.get(n)) for n in names))
    console.print(table)
    report_file = Path(args.studies_dir) / args.study / "report.json"
    if report_file.is_file():
        report = json.loads(report_file.read_text())
        test = report["test"]
        metrics = Table(title=f"test set ({test['n_test']} images)")
        for column in ["class", "precision", "recall", "f1", "support"]:
            metrics.add_column(column, justify="right")
        for name, row in test["classification_report"].items():
            if isinstance(row, dict):
                metrics.add_row(name, f"{row['precision']:.4f}", f"{row['recall']:.4f}",
                                f"{row['f1-score']:.4f}", str(int(row['support'])))
        console.print(metrics)
        console.print(f"test accuracy {test['test_accuracy']:.4f}, loss {test['test_loss']:.4f}")
        if report.get("confirmation"):
            console.print(confirmation_table(report["confirmation"]))
        if report.get("ensemble"):
            console.print(f"ensemble of trials {report['ensemble']['trials']}: test accuracy "
                          f"{report['ensemble']['test_accuracy']:.4f}")
        if report.get("exports"):
            console.print(exports_table(report["exports"].values(), "exports"))
    else:
        console.print(f"not retrained yet: python cli.py retrain --study {args.study}")
    if args.html:
        from search.html_report import write_html

        path = write_html(study, Path(args.studies_dir) / args.study, Path(args.html), args.top)
        console.print(f"HTML report: {path} (self-contained: open it in any browser)")


def cmd_export(args) -> None:
    from search.export import FORMATS
    from search.pipeline import export_study

    formats = list(FORMATS) if "all" in args.format else list(dict.fromkeys(args.format))
    rows = export_study(args.study, formats, out=args.out, storage=args.storage,
                        studies_dir=args.studies_dir)
    console.print(exports_table(rows, f"exports of {args.study} on the test set (latency: batch 1, this machine)"))


def exports_table(rows, title: str):
    """Exports measured on the test set (their paths are printed as they are written)."""
    from rich.table import Table

    table = Table(title=title)
    for column in ["format", "MB", "test acc.", "vs Keras", "ms/image"]:
        table.add_column(column, justify="left" if column == "format" else "right")
    for r in rows:
        change = "" if r["accuracy_change"] is None else f"{r['accuracy_change']:+.4f}"
        table.add_row(r["format"], f"{r['bytes'] / 1e6:.1f}", f"{r['test_accuracy']:.4f}", change,
                      f"{r['latency_ms']:.2f}")
    return table


def cmd_predict(args) -> None:
    from rich.table import Table

    from search.predict import predict_files

    predictions = predict_files(args.model, args.images)
    table = Table(title=f"predictions of {args.model}")
    table.add_column("image", overflow="fold")  # whole paths, wrapped, never cut
    table.add_column("class")
    table.add_column("probability", justify="right")
    for p in predictions:
        table.add_row(str(p.image), p.class_name, f"{p.probability:.4f}")
    console.print(table)


def cmd_dashboard(args) -> None:
    from search.dashboard import serve_in_background

    storage = storage_url(args)
    url, server = serve_in_background(storage, args.studies_dir, args.host, args.port)
    console.print(f"optuna-dashboard on {storage}: {url} (Ctrl-C stops it)")
    try:
        server.join()
    except KeyboardInterrupt:
        console.print("dashboard stopped")
        return
    raise UserError("the dashboard's server stopped by itself (its error is above)")


def cmd_list(args) -> None:
    import optuna
    from rich.table import Table

    from search.study import SETTINGS_ATTR, connect

    summaries = optuna.get_all_study_summaries(connect(storage_url(args)))
    table = Table(title=f"studies in {storage_url(args)}")
    for column in ["study", "dataset", "trials", "best val_accuracy"]:
        table.add_column(column)
    for s in summaries:
        best = f"{s.best_trial.value:.4f}" if s.best_trial else "-"
        dataset = s.user_attrs.get(SETTINGS_ATTR, {}).get("dataset", "?")
        table.add_row(s.study_name, dataset, str(s.n_trials), best)
    console.print(table)


def cmd_preview(args) -> None:
    from search.data import load_dataset
    from search.preview import preview

    if any(not 0 <= s <= 1 for s in args.strength):
        raise UserError(f"--strength values must be between 0 and 1, got {args.strength}")
    data = load_dataset(args.dataset)
    out = Path(args.out or Path(STUDIES_DIR) / f"preview-{data.name}.png")
    console.print(f"preview written: {preview(data, args.strength, out, args.image_size).path}")


COMMANDS = {"search": cmd_search, "compare": cmd_compare, "preview": cmd_preview, "retrain": cmd_retrain, "report": cmd_report,
            "export": cmd_export, "predict": cmd_predict, "dashboard": cmd_dashboard, "list": cmd_list}


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        COMMANDS[args.command](args)
    except UserError as err:
        console.print(f"error: {err}", style="bold red", markup=False, highlight=False,
                      soft_wrap=True)
        return 2
    except ReportedError:
        return 2
    except KeyboardInterrupt:
        console.print("interrupted: finished trials are saved; run the same command to resume",
                      style="yellow")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
