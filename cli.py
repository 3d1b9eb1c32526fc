#!/usr/bin/env python3
"""jaxstyle command line; the same as ``python -m jaxstyle``."""

import sys

from jaxstyle import interrupts  # light: importing the package itself loads nothing heavy

interrupts.hold()  # an interrupt during the imports is acted on when they are done
from jaxstyle.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(interrupts.finish(main()))
