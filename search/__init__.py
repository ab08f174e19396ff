"""vggsearch: Optuna studies over VGG16 transfer-learning classifiers.

Importing this package sets TensorFlow's environment before TensorFlow is imported: oneDNN on
(measured 5.6x faster training on the AMD CPUs we run on, where TensorFlow leaves it off) and its
C++ start-up chatter off. A value the user already set wins.
"""
import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


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


_quiet_optuna()
