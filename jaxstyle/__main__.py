"""``python -m jaxstyle`` (and the ``jaxstyle`` command): the CLI, with an interrupt during start-up
(the imports) answered as one line and exit 130 like any other (:mod:`jaxstyle.interrupts`)."""

import sys

from . import interrupts

interrupts.hold()  # an interrupt during the imports is acted on when they are done
from .cli.main import main  # noqa: E402


def run() -> int:
    return interrupts.finish(main())


if __name__ == "__main__":
    sys.exit(run())
