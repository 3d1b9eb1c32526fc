"""Writing files the safe way: checked before the work starts, written under a hidden temporary name
beside the target and renamed into place when complete, with the permissions an ordinary write
gives; a lock per output so two jobs never write the same one; and the clean-up of what killed
runs left behind.

Temporary names are ``.NAME.XXXXXXXX.TAG.EXT`` (the output's whole name, eight hex digits, a tag such
as ``partial``): :func:`remove_stale_temps` finds exactly those, so nothing else beside an output is
ever touched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import stat
import tempfile
from pathlib import Path

import numpy as np

from ..errors import UserError

TEMP_TAGS = ("partial", "video", "frames", "audio", "subtitles")
LOCK_SUFFIX = ".jaxstyle-lock"


def cache_root() -> Path:
    """Where jaxstyle keeps what it can recompute (flows, compiled programs): ``$JAXSTYLE_CACHE`` if
    set, else ``$XDG_CACHE_HOME/jaxstyle`` (``~/.cache/jaxstyle``)."""
    root = os.environ.get("JAXSTYLE_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "jaxstyle"


def write_target(path: str | os.PathLike) -> Path:
    """The file that writing ``path`` changes: a symbolic link's target (resolved to the end), so an
    output that is a link stays a link and its target gets the new content, as a plain write does."""
    return Path(os.path.realpath(path))


def temp_path(path: str | os.PathLike, tag: str = "partial", suffix: str | None = None) -> Path:
    """A hidden temporary name beside the file ``path`` writes (:func:`write_target`), ending with
    ``path``'s extension (or ``suffix``): ``.NAME.XXXXXXXX.TAG.EXT``, NAME the target's whole file
    name, so two outputs never share one and the rename onto the target stays on one file system."""
    target = write_target(path)
    ext = Path(os.fspath(path)).suffix if suffix is None else suffix
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.{tag}{ext}")


def check_name_length(path: str | os.PathLike, temp_depth: int = 1) -> None:
    """The file system takes ``path``'s name and the longest temporary name it gets while written
    (``temp_depth`` 2: a temporary file of a temporary file, as a video's), so a long name fails
    here, not after the work."""
    path = write_target(path)
    try:
        name_max = os.pathconf(path.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    longest = path
    for _ in range(temp_depth):
        longest = temp_path(longest, max(TEMP_TAGS, key=len))
    if len(os.fsencode(longest.name)) > name_max:
        room = name_max - (len(os.fsencode(longest.name)) - len(os.fsencode(path.name)))
        raise UserError(f"the file name {path.name[:40]}... is too long ({len(os.fsencode(path.name))} bytes; "
                        f"the outputs here take at most {max(room, 1)})")


def _stale_pattern(path: Path) -> re.Pattern:
    """Temporary names of ``path`` (:func:`temp_path`), also nested: the temporary file of a
    temporary file (a video's frames written under a hidden name, themselves written under one)."""
    one = rf"\.[0-9a-f]{{8}}\.({'|'.join(TEMP_TAGS)})\.[A-Za-z0-9]+"
    return re.compile(rf"^\.+{re.escape(path.name)}({one})+$")


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed runs to ``path`` left beside it (call it holding the
    output's lock, so no live job owns them); returns what was removed."""
    path = write_target(path)
    pattern = _stale_pattern(path)
    removed = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in names:
        if pattern.match(name):
            try:
                (path.parent / name).unlink()
                removed.append(path.parent / name)
            except OSError:
                pass
    return removed


def ordinary_mode(path: str | os.PathLike) -> int:
    """The mode an ordinary write to ``path`` ends with: an existing file's own, else 0666 less the
    umask (temporary files are created 0600, which the rename would otherwise keep)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def replace_into(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move a finished temporary file onto ``path`` (a link's target: :func:`write_target`) with the
    ordinary mode (atomic on one filesystem)."""
    os.chmod(tmp, ordinary_mode(path))
    os.replace(tmp, write_target(path))


WRITE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EFBIG: "the file is larger than allowed",
                errno.EDQUOT: "the disk quota is exceeded", errno.EROFS: "the file system is read-only",
                errno.ENAMETOOLONG: "the file name is too long"}


def os_error_line(exc: OSError) -> str | None:
    """The user's one line for an OSError that is about the user's files or disk (a full disk, a
    quota, a read-only file system, a name too long), or None for one that is a bug."""
    if exc.errno == errno.ENAMETOOLONG:  # an input's or an output's name
        return f"the file name is too long: {exc.filename or exc}"
    if exc.errno in WRITE_ERRNOS:
        return str(write_failure(exc.filename or "a file", exc))
    return None


def write_failure(path, exc: OSError) -> UserError:
    """The one line for a write that failed (a full disk, a file-size limit, no permission)."""
    return UserError(f"cannot write {path}: {WRITE_ERRNOS.get(exc.errno, exc.strerror or str(exc))}")


def check_writable_dir(directory: str | os.PathLike, what: str) -> None:
    """``directory`` exists and a file can be created in it (a probe file, removed at once)."""
    directory = Path(directory) if str(directory) else Path(".")
    if not directory.exists():
        raise UserError(f"{what} directory {directory} does not exist")
    if not directory.is_dir():
        raise UserError(f"{what} directory {directory} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".jaxstyle-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"cannot write into {directory} (for {what}): {exc.strerror or exc}") from None


def check_output_file(path: str | os.PathLike, what: str) -> Path:
    """An output file path whose directory is writable and that is not a directory itself."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a directory")
    check_writable_dir(write_target(path).parent, what)  # where the temporary file goes
    return path


def check_output_dir(path: str | os.PathLike, what: str) -> Path:
    """A folder the job will write into: an existing directory, or one that can be made (its
    nearest existing parent writable); never an existing file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a directory")
    existing = path
    while not existing.exists():
        existing = existing.parent
    check_writable_dir(existing, what)
    return path


def write_json_atomic(path: str | os.PathLike, data: dict, what: str = "--metrics-json") -> None:
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UserError(f"directory of {what} {path} does not exist")
    write_text_atomic(path, json.dumps(data, indent=2, default=json_default))


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike):
    """A temporary path beside ``path`` to write; it replaces ``path`` (with the ordinary mode) when
    the block succeeds and is removed when it fails. A failed write is one UserError line."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        replace_into(tmp, path)
    except OSError as exc:
        raise write_failure(path, exc) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (a temporary file beside it, then a rename)."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def json_default(value):
    """JSON for numpy scalars and arrays (and anything else as its string)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


class OutputLock:
    """An exclusive lock on what a job writes (its output, its work directory), held until
    :meth:`release`: a lock file ``.NAME.jaxstyle-lock`` beside it, locked with ``flock``. The kernel
    drops the lock of a process that dies, so a killed job's lock is simply taken over (its file,
    with the dead process's id, says so: :attr:`took_over`)."""

    def __init__(self, path: str | os.PathLike, what: str = "output"):
        # a file behind a link is written at its target, so it is locked there; a folder (a model
        # directory, a work directory) is written through its path, and locked beside it
        target = Path(os.path.abspath(path)) if os.path.isdir(path) else write_target(path)
        self.target, self.what = target, what
        self.path = target.with_name(f".{target.name}{LOCK_SUFFIX}")
        self.fd: int | None = None
        self.took_over: int | None = None

    def acquire(self) -> "OutputLock":
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise UserError(f"cannot lock {self.target} ({self.path}): {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                raise UserError(f"another jaxstyle job{f' (pid {holder})' if holder else ''} is writing {self.target}; "
                                f"wait for it to finish or choose another {self.what}") from None
            try:  # the file may have been removed and made anew by a job that just finished
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read_pid(fd)
        if previous and previous != os.getpid() and not _alive(previous):
            self.took_over = previous
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # while still holding it, so no other job locks a dead file
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode(errors="replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
