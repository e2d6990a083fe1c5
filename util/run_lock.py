"""One process per run folder: an exclusive ``flock`` on ``<folder>/.lock``, held for the life of the process.

Two runs writing one folder mix their files silently. The file holds the pid that a refused run names; the kernel
drops a dead process's ``flock``, so a killed run's lock file is simply locked again."""
import atexit
import errno
import fcntl
import os
import time
from pathlib import Path

from util.distributed import is_main_process
from util.errors import UserError
from util.files import make_folder

LOCK_NAME = ".lock"

_held: dict[Path, tuple[int, list[Path]]] = {}  # folder -> (lock file descriptor, the folders locking created)


def lock_run_folder(folder: Path, flag: str = "--outdir") -> None:
    """Takes ``folder``'s lock (creating the folder; ``flag`` names it in errors) until the entry point ends; a live
    holder is a UserError naming its pid. A lock this process holds already is kept."""
    folder = Path(folder).absolute()
    if folder in _held or not is_main_process():
        return
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    make_folder(folder, flag)
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise UserError(f"{folder} is in use by another run (pid {_holder(path)}); wait for it to end, or pass "
                            f"another {flag}") from None
        if _same_file(fd, path):  # else the holder removed the file between our open and our lock: try again
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[folder] = (fd, created)


def _holder(path: Path) -> str:
    """The holder's pid. A holder writes it just after it takes the lock, so an empty file is read again for a while."""
    for _ in range(50):
        try:
            pid = path.read_text().strip()
        except OSError:
            return "unknown"
        if pid:
            return pid
        time.sleep(0.02)
    return "unknown"


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


@atexit.register
def release_run_folders() -> None:
    """Releases every lock this process holds (``run_setup.run_main``, else atexit). Each lock file is removed while
    still locked, so no other process can come to hold it; then the folders its locking created, if empty."""
    for folder, (fd, created) in list(_held.items()):
        del _held[folder]
        try:
            (folder / LOCK_NAME).unlink()
            for made in created:
                made.rmdir()
        except OSError:
            pass  # the folder holds the run's files, or is gone: nothing more to tidy
        os.close(fd)
