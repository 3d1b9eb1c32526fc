"""User-facing errors.

Anything that is the user's fault (a missing file, a bad format, a checksum that does not match)
raises :class:`UserError`. The CLI prints its message as one line and exits with code 2; the Python
API lets it propagate.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, reported as one clear line (CLI exit code 2)."""

    exit_code = 2

    def __init__(self, message: str):
        # Keep it to one line: the CLI prints exactly this.
        super().__init__(" ".join(str(message).split()))


class NonFiniteLoss(UserError):
    """The loss became NaN or infinite; the last finite image is kept."""
