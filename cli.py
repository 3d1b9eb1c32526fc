#!/usr/bin/env python3
"""jaxstyle command line; the same as ``python -m jaxstyle``."""

import sys

from jaxstyle.cli import main

if __name__ == "__main__":
    sys.exit(main())
