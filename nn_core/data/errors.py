"""The exception types raised for bad input data."""

from __future__ import annotations

from nn_core.safe_read import InputFileError


class DataError(InputFileError):
    """Input data that cannot be used, with a message meant for a person.

    The message names the problem and the fix in one or two sentences, and mentions the
    file name when it is known. It is safe to show as is in the app.
    """


class IncompleteFilesError(DataError):
    """A set of files with a member missing, e.g. an IDX image file without its labels.

    Adding the missing file fixes it, so an app can keep the files it has and wait.
    """
