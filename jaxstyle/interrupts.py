"""Ctrl-C at any moment gives one line and exit 130 (SIGTERM: the same, exit 143).

Python turns SIGINT into a KeyboardInterrupt wherever the interpreter happens to be, which goes
wrong in three places. During the start-up imports an extension module that is interrupted while it
initializes turns it into an ImportError (NumPy does), or crashes; so the entry points first
:func:`hold` interrupts (the signal is only noted) and act on one after the imports
(:func:`install`). Inside a garbage-collector callback (JAX registers one) or an object's finalizer
the exception is "ignored": a traceback is printed and the interrupt is lost; so the handler that
:func:`install` sets defers the signal by a few milliseconds (a timer) until the interpreter is back
in ordinary code, where it is raised as usual.
"""

from __future__ import annotations

import gc
import os
import signal
import sys

RETRY_SECONDS = 0.02
# SIGTERM (``kill``, ``timeout``, ``docker stop``) ends a job the same way as Ctrl-C: the one line,
# partial outputs and the lock removed; its exit code is 128 + 15.
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_held = False
_terminated = False


def hold() -> None:
    """Note an interrupt without acting on it (while the CLI's modules are imported)."""
    for signum in _SIGNALS:
        signal.signal(signum, _note)


def exit_code() -> int:
    """130 after Ctrl-C, 143 after SIGTERM."""
    return 143 if _terminated else 130


def line() -> str:
    return "jaxstyle: terminated" if _terminated else "jaxstyle: interrupted"


def install():
    """Interrupts raise KeyboardInterrupt (deferred out of finalizers); one held before ends the
    process now. Returns the handlers it replaced, for :func:`restore`."""
    previous = tuple(signal.getsignal(s) for s in (*_SIGNALS, signal.SIGALRM))
    for signum in (*_SIGNALS, signal.SIGALRM):  # (SIGALRM: the deferred retry)
        signal.signal(signum, _on_interrupt)
    if _held:
        exit_interrupted()
    return previous


def restore(previous) -> None:
    global _terminated
    _terminated = False  # (the next main() in this process starts afresh)
    signal.setitimer(signal.ITIMER_REAL, 0)
    for signum, handler in zip((*_SIGNALS, signal.SIGALRM), previous):
        signal.signal(signum, handler)


def exit_interrupted() -> None:
    """End the process at once with the one line (for an interrupt during start-up, when modules
    are half imported and their exit handlers would only add noise)."""
    for signum in _SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    sys.stderr.write(line() + "\n")
    sys.stderr.flush()
    os._exit(exit_code())


def finish(code: int) -> int:
    """The process's exit: after a failure (an interrupt above all) end it at once, once the one line
    is out. Interpreter tear-down with XLA work still in flight (an interrupted compile or step) can
    crash, turning exit 130 into a segmentation fault; every output is already complete or removed
    (atomic writes), so nothing is lost by skipping it."""
    if code:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    # a success: an interrupt during the interpreter's own tear-down is ignored (SIG_IGN survives
    # it, where a Python-level handler is reset to the default, which would kill the process);
    # SIGTERM keeps its default, so that a tear-down that hangs can still be ended
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return code


def _note(signum, frame) -> None:
    global _held, _terminated
    _held = True
    _terminated = _terminated or signum == signal.SIGTERM


def _on_interrupt(signum, frame) -> None:
    global _terminated
    _terminated = _terminated or signum == signal.SIGTERM
    if _swallowing(frame):
        signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS)
        return
    raise KeyboardInterrupt


def _swallowing(frame) -> bool:
    """Whether an exception raised in ``frame`` would be ignored: it runs inside a garbage-collector
    callback or a finalizer."""
    callbacks = {getattr(cb, "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        if frame.f_code in callbacks or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False
