"""Mistakes a user can make: the CLI prints the message of a UserError and exits 2."""


class UserError(Exception):
    """A problem with the user's input (dataset, weights, space, storage, study), not a bug."""


class ReportedError(Exception):
    """A user error that a worker process has already printed: exit 2 without a second line."""


class SurplusTrial(Exception):
    """A trial started when the study's last trials were already running elsewhere: not run."""


class LostTrial(Exception):
    """A trial that another worker failed as stale while it ran here (its heartbeats came late):
    its result is dropped; the copy the other worker queued runs instead."""
