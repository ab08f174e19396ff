"""The one exception type for mistakes a user can make: the CLI prints its message and exits 2."""


class UserError(Exception):
    """A problem with the user's input (dataset, weights, space, storage, study), not a bug."""
