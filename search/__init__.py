"""vggsearch: Optuna studies over VGG16 transfer-learning classifiers.

Importing this package sets TensorFlow's environment before TensorFlow is imported: oneDNN on
(measured 5.6x faster training on the AMD CPUs we run on, where TensorFlow leaves it off), its
C++ start-up chatter off, and glibc's malloc keeping freed memory rather than returning it to the
kernel after every training step (search.memory.keep_freed_heap). A value the user already set
wins.
"""
import importlib.util
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
if "tensorflow" not in sys.modules:  # set after TensorFlow has trained, it changed nothing
    from search.memory import keep_freed_heap

    keep_freed_heap()


def _quiet_optuna() -> None:
    """vggsearch prints one line per trial itself; heartbeats are experimental but wanted; Ctrl-C
    is a user's choice, a surplus trial (search.shared_study) a decision, a lost trial
    (search.pipeline.optimize) and a user error are printed in one line by vggsearch: none is a
    failure to log with a traceback."""
    import logging
    import re
    import warnings

    import optuna

    from search.errors import LostTrial, SurplusTrial, UserError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    # Optuna logs a failed trial in two lines, the second without the exception: drop both.
    just_dropped = [None]  # "Trial N failed" of the last line dropped

    def not_expected(record: logging.LogRecord) -> bool:
        trial = re.match(r"Trial \d+ failed", record.getMessage())
        follows_dropped = trial is not None and trial[0] == just_dropped[0]
        just_dropped[0] = None
        if record.exc_info and issubclass(record.exc_info[0],
                                          (KeyboardInterrupt, LostTrial, SurplusTrial,
                                           UserError)):
            just_dropped[0] = trial and trial[0]
            return False
        return not follows_dropped

    for handler in logging.getLogger("optuna").handlers:  # logger filters miss child loggers
        handler.addFilter(not_expected)


class _QuietTensorFlowImport:
    """An import hook for the first `import tensorflow`: TensorFlow 2.21 logs through absl before
    absl is initialised, which ignores TF_CPP_MIN_LOG_LEVEL (tensorflow/tensorflow#100442), so every
    process would start with four lines of 'oneDNN custom operations are on' above a user error's
    one line. Its C-level stderr goes to a file while the module loads; what the level allows is
    written back afterwards."""

    RECORD = re.compile(r"([IWEF])\d{4} [\d:.]+ +\d+ \S+:\d+\] ")  # absl's line head
    NOT_INITIALISED = "WARNING: All log messages before absl::InitializeLog()"

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once, and not for the lookup just below
        spec = importlib.util.find_spec(name)
        if spec is not None and hasattr(spec.loader, "exec_module"):
            load = spec.loader.exec_module
            spec.loader.exec_module = lambda module: self.filtered(load, module)
        return spec

    def filtered(self, load, module) -> None:
        level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")
        level = int(level) if level.isdigit() else 0  # as TensorFlow reads a value not a number
        sys.stderr.flush()
        stderr, python_stderr = os.dup(2), sys.stderr
        with tempfile.TemporaryFile() as captured, open(stderr, "w", closefd=False) as terminal:
            os.dup2(captured.fileno(), 2)  # the C++ libraries' stderr
            if python_stderr is sys.__stderr__:  # Python's own warnings go out as they come
                sys.stderr = terminal
            try:
                load(module)
            finally:
                sys.stderr = python_stderr
                terminal.flush()
                os.dup2(stderr, 2)
                os.close(stderr)
                captured.seek(0)
                sys.stderr.write(self.allowed(captured.read().decode(errors="replace"), level))

    def allowed(self, text: str, level: int) -> str:
        """absl's records in `text` at or above `level` (0 info, 1 warning, 2 error, 3 fatal), each
        with the lines that follow it (a record may take several), and any lines before the first."""
        kept, keep = [], True
        for line in text.splitlines(keepends=True):
            record = self.RECORD.match(line)
            if record:
                keep = "IWEF".index(record[1]) >= level
            elif line.startswith(self.NOT_INITIALISED):
                continue
            if keep:
                kept.append(line)
        return "".join(kept)


_quiet_optuna()
if "tensorflow" not in sys.modules:
    sys.meta_path.insert(0, _QuietTensorFlowImport())
