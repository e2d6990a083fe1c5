"""Files of a run folder: atomic writes, folder creation, and reads whose failures are one-line user errors.

A write that fails (disk full, read-only or forbidden folder, a name too long) removes its temporary file and, for
the causes a user fixes, becomes a UserError: one line naming the file, no traceback, nothing half-written left."""
import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from util.errors import UserError

# OSError numbers whose cause is the user's disk, folder or path, with what to do about each.
USER_FIXABLE = {**dict.fromkeys((errno.ENOSPC, errno.EDQUOT), "free some space or pass a folder on another disk"),
                **dict.fromkeys((errno.EACCES, errno.EPERM), "pass a folder you may write to"),
                errno.EROFS: "pass a writable folder",
                errno.ENAMETOOLONG: "use a shorter path (at most 255 characters per name, 4096 in all)",
                errno.ELOOP: "the path runs through a symlink loop; fix or remove the link"}


def user_os_error(err: OSError, path=None) -> UserError:
    """The one-line UserError of an OSError whose errno is in USER_FIXABLE (the caller checks)."""
    where = path or err.filename or "a file"
    return UserError(f"cannot use {where} ({err.strerror or err}); {USER_FIXABLE[err.errno]}")


def fixable_cause(err: BaseException) -> OSError | None:
    """The OSError with a USER_FIXABLE errno that ``err`` is or arose from, if any. (torch.save's zip writer turns
    the OSError of a full disk into a RuntimeError raised while handling it.)"""
    while err is not None:
        if isinstance(err, OSError) and err.errno in USER_FIXABLE:
            return err
        err = err.__cause__ or err.__context__
    return None


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Calls ``write`` on a temporary file beside ``path``, then renames it over ``path``: a crash mid-write never
    corrupts what was there, and a failed or interrupted write leaves no temporary file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException as err:  # Ctrl-C and SIGTERM too
        with contextlib.suppress(OSError):  # the temporary file could not even be made
            tmp.unlink(missing_ok=True)
        cause = fixable_cause(err)
        if cause is not None:
            raise user_os_error(cause, path) from None
        raise


def write_json(path: Path, content: dict) -> None:
    """Atomic JSON write (see ``atomic_write``)."""
    atomic_write(path, lambda fh: fh.write(json.dumps(content, indent=2).encode()))


def read_json(path: Path) -> dict:
    """A JSON file of a run folder; a missing, unreadable or corrupt one is a UserError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {path} ({err.__class__.__name__}); restore it, or rerun what wrote it") from None


def read_results(run_dir: Path, why: str) -> dict:
    """``run_dir``'s results.json; without one a UserError '<path> not found: ``why``'."""
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise UserError(f"{path} not found: {why}")
    return read_json(path)


def unwritable_reason(folder: Path) -> str | None:
    """None when a file can be made in ``folder``, else why not (a probe file: a read-only mount refuses even root)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as err:
        return err.strerror or str(err)


def make_folder(path: Path, flag: str) -> Path:
    """Creates ``path`` (and parents); an invalid or unwritable path is a one-line error naming the flag."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        reason = unwritable_reason(path)
    except OSError as err:
        reason = err.strerror or err
    if reason:
        raise UserError(f"{flag} {path} cannot be used as a folder ({reason}); pass a writable folder") from None
    return path
