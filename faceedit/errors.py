"""Exceptions that carry a message meant for a person.

The CLI prints ``FaceeditError`` messages as one line and exits non-zero; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class FaceeditError(Exception):
    """An error caused by the user's input (file, option, data), with a clear message."""


class CheckpointError(FaceeditError):
    """A checkpoint could not be recognised or loaded."""


class ImageError(FaceeditError):
    """An image could not be read or is unusable."""


class DataError(FaceeditError):
    """A dataset (labels, codes, images) is malformed."""


class EditError(FaceeditError):
    """An edit request (attribute, strength, model part) is unusable."""
