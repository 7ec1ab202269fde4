"""Errors about user input: each names the file and, where it applies, the row or frame."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: a malformed table, a missing image, an undecodable video.

    The message always starts with the URI, then the row or frame when known, so a user can go straight
    to the offending place.
    """

    def __init__(self, source: str, message: str, row: object = None, frame: int | None = None):
        where = source
        if row is not None:
            where += f", row {row}"
        if frame is not None:
            where += f", frame {frame}"
        super().__init__(f"{where}: {message}")
        self.source = source
        self.detail = message
        self.row = row
        self.frame = frame

    def __reduce__(self):
        # Rebuilt from its parts, so it crosses process boundaries (Ray workers) intact.
        return type(self), (self.source, self.detail, self.row, self.frame)


# What one input of a batch command may fail with and be reported alone, the others going on: bad data
# (InputError is a ValueError) or an object that cannot be read. Anything else is a bug and stops the run.
PER_INPUT_ERRORS = (ValueError, OSError)
