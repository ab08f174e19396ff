"""The study's trials, run in a worker process that is replaced when its memory grows.

TensorFlow 2.21 kept every model a process had trained, through its gradient registry, until
search.memory.clear_session, called after each trial, purged it (before: +150 MB a small trial,
gigabytes over a 50-trial study). Whatever may still grow in a long process (another library's
cache, a leak of a later TensorFlow) is bounded here: the trials run in a worker process; when its
anonymous memory passes `memory_limit_mb` after a trial, it exits and a fresh worker takes over the
same study. A worker reloads the data and memory-maps the on-disk activation cache, so a new one
costs seconds.

GPUs: with several workers on a host that has several GPUs, each worker sees one of them
(CUDA_VISIBLE_DEVICES, set before it imports TensorFlow), round robin.

Ctrl-C: the worker sits in its own process group, so a terminal's Ctrl-C reaches only the parent,
which forwards it; the worker stops at its next safe point and marks its trial, as before.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from search import interrupt
from search.errors import ReportedError, UserError

DEFAULT_MEMORY_LIMIT_MB = 4096
DONE, RECYCLE, INTERRUPTED, FAILED = 0, 3, 130, 2


@dataclass(frozen=True)
class TrialsJob:
    """What a worker needs to run the study's missing trials: all plain, picklable values."""

    storage: str
    study_name: str
    settings: object  # search.study.SearchSettings
    trials: int
    seed: int | None
    pruner: str
    cache_dir: str
    memory_limit_mb: float | None = DEFAULT_MEMORY_LIMIT_MB
    keras_tuner: str | None = None  # run KerasTuner's tuner of this kind instead of Optuna's TPE
    keras_tuner_dir: str | None = None  # where KerasTuner keeps its state
    worker: int = 0  # which of the workers running side by side (their samplers differ)
    gpu: str | None = None  # the one GPU this worker sees (CUDA_VISIBLE_DEVICES), if chosen


def run_trials(job: TrialsJob, workers: int = 1) -> None:
    """Run `workers` worker processes side by side on the study until it has `job.trials` finished
    trials; a worker that passes the memory limit is replaced by a fresh one."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited TF state
    gpus = visible_gpus() if workers > 1 else []

    def start(index: int):
        gpu = gpus[index % len(gpus)] if gpus else None
        worker = context.Process(target=_worker_main, args=(replace(job, worker=index, gpu=gpu),),
                                 name=f"vggsearch-trials-{index}")
        worker.start()
        return worker

    running = {index: start(index) for index in range(workers)}
    codes = []
    while running:
        index, code = _wait_any(running)
        del running[index]
        if code == RECYCLE:
            running[index] = start(index)
        elif code != DONE:
            codes.append(code)
            if code == FAILED:  # a user error: the others would meet it too
                _interrupt(running.values())
    if INTERRUPTED in codes:
        raise KeyboardInterrupt
    if FAILED in codes:  # the worker printed the reason (a user error) already
        raise ReportedError()
    if codes:
        raise UserError(f"a trials' worker process died (exit status {codes[0]}); finished trials "
                        "are saved: run the same command to resume")


def visible_gpus() -> list[str]:
    """This host's GPUs as CUDA_VISIBLE_DEVICES names them: the user's list where set, else
    nvidia-smi's; none without either."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [g.strip() for g in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    try:
        listed = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return listed.stdout.split() if listed.returncode == 0 else []


def _wait_any(running: dict) -> tuple[int, int]:
    """Wait until a worker ends: (its index, its exit status). Ctrl-C is forwarded to every worker
    (the first asks them to stop at a safe point, a second one stops them at once, as in a single
    process)."""
    while True:
        try:
            for index, worker in running.items():
                worker.join(0.2 / len(running))
                if worker.exitcode is not None:
                    return index, worker.exitcode
            interrupt.check()
        except KeyboardInterrupt:
            _interrupt(running.values())


def _interrupt(workers) -> None:
    for worker in workers:
        if worker.exitcode is None:
            os.kill(worker.pid, signal.SIGINT)


def _worker_main(job: TrialsJob) -> None:
    if hasattr(os, "setpgrp"):  # POSIX: terminal Ctrl-C goes to the parent only, which forwards it
        os.setpgrp()
    if job.gpu is not None:  # before TensorFlow is imported, which reads it once
        os.environ["CUDA_VISIBLE_DEVICES"] = job.gpu
    from search.progress import console

    if job.gpu is not None:
        console.print(f"worker {job.worker}: GPU {job.gpu}")

    with interrupt.graceful():
        try:
            code = run_trials_here(job)
        except UserError as err:
            console.print(f"error: {err}", style="bold red", markup=False, highlight=False,
                          soft_wrap=True)
            code = FAILED
        except KeyboardInterrupt:
            code = INTERRUPTED
    sys.exit(code)


def run_trials_here(job: TrialsJob) -> int:
    """In this process: run trials until the study has enough (DONE) or this process's memory
    passed the limit (RECYCLE)."""
    from search.cache import FeatureCache
    from search.data import load_dataset
    from search.model import load_vgg16
    from search.objective import Objective
    from search.pipeline import optimize, study_progress
    from search.preprocess import search_images
    from search.progress import new_progress
    from search.space import Space
    from search.study import connect, open_study

    s = job.settings
    data = load_dataset(s.dataset)
    train, val = search_images(data, s.val_fraction, s.subset, s.image_size)
    base = load_vgg16(s.weights, s.image_size)
    # Workers started together see the same number of trials: their sampler seeds must differ.
    sampler_seed = None if job.seed is None else job.seed + 100_000 * job.worker
    study = open_study(connect(job.storage), job.study_name, s, sampler_seed, job.pruner)
    with new_progress() as progress:
        cache = FeatureCache(Path(job.cache_dir), base, s.weights_id, s.image_size,
                             data.flips_keep_label, progress=progress)
        space, n_classes, seed = Space.from_dict(s.space), len(data.class_names), job.seed or 0
        if job.keras_tuner:
            from search.tuner import SuffixHyperModel, tune  # KerasTuner imports TensorFlow

            hypermodel = SuffixHyperModel(space, cache, train, val, n_classes, progress)
            full = tune(study, job.keras_tuner, hypermodel, Path(job.keras_tuner_dir), job.trials,
                        s.epochs, seed, job.memory_limit_mb,
                        study_progress(study, job.trials, progress))
        else:
            objective = Objective(space, cache, train, val, n_classes, s.epochs, seed, progress,
                                  job.worker)
            full = optimize(study, objective, job.trials, progress, job.memory_limit_mb)
    return RECYCLE if full else DONE
