"""The package's error types.

Every error a user can cause (bad input, missing files, invalid settings) is an
:class:`H2LearnError` with a one-line message that names the problem and the
fix; the CLI prints it without a traceback.
"""


class H2LearnError(Exception):
    """A user-facing error; its message is one line naming the problem and the fix."""


class DataError(H2LearnError):
    """A dataset is missing, corrupt or in the wrong format."""


class CheckpointError(H2LearnError):
    """A checkpoint is missing, corrupt or does not match the model."""


class TrainingDiverged(H2LearnError):
    """The loss or the weights became NaN or infinite."""
