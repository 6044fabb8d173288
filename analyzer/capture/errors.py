"""Errors of the capture layer.

Only a file that cannot be read at all raises; damage inside a readable file is counted instead.
"""

from __future__ import annotations


class CaptureError(Exception):
    """The file is not a capture we can read: says which file, what is wrong and where."""

    def __init__(self, path: str, message: str, offset: int | None = None) -> None:
        self.path = str(path)
        self.message = message
        self.offset = offset
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{self.path}: {message}{where}")
