"""User-facing errors, and how messages and log lines name things (the command, a count).

Anything that is the user's fault (a missing file, a bad format, a checksum that does not match)
raises :class:`UserError`. The CLI prints its message as one line and exits with code 2; the Python
API lets it propagate.
"""

from __future__ import annotations

import os
import sys


class UserError(Exception):
    """A problem with the user's input, reported as one clear line (CLI exit code 2)."""

    exit_code = 2

    def __init__(self, message: str):
        # Keep it to one line: the CLI prints exactly this.
        super().__init__(" ".join(str(message).split()))


class NonFiniteLoss(UserError):
    """The loss became NaN or infinite; the last finite image is kept."""


def first_line(exc: BaseException) -> str:
    """An exception as one short line: its message's first non-empty line, or its type's name
    (some libraries raise with no message, or with only a number)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[0].strip() if any(c.isalpha() for c in lines[0]) else f"{type(exc).__name__} {lines[0].strip()}"


def program() -> str:
    """How the user started jaxstyle (``python cli.py``, ``python -m jaxstyle`` or the ``jaxstyle``
    command), so that a message naming a command names the one the user can type."""
    started = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "cli.py"
    if started == "cli.py":
        return "python cli.py"
    if started == "__main__.py" and os.path.basename(os.path.dirname(os.path.abspath(sys.argv[0]))) == "jaxstyle":
        return "python -m jaxstyle"
    if started.endswith(".py") or started in ("-c", "-m", "pytest", "python", "python3", "ipykernel_launcher.py"):
        return "python cli.py"  # (the Python API, a notebook or a test: the repository's command)
    return started


def counted(n: int, noun: str) -> str:
    """``1 frame``, ``2 frames``: a count with its noun (a regular plural)."""
    return f"{n} {noun}" + ("" if n == 1 else "s")
