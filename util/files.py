"""JSON files of a run folder: atomic writes, and reads whose failures are one-line user errors."""
import json
import os
import tempfile
from pathlib import Path
from typing import Dict, Optional

from util.errors import UserError


def write_json(path: Path, content: Dict) -> None:
    """Atomic JSON write (temporary file + rename): a crash mid-write never corrupts what was there."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(content, indent=2))
    os.replace(tmp, path)


def read_json(path: Path) -> Dict:
    """A JSON file of a run folder; a missing, unreadable or corrupt one is a UserError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {path} ({err.__class__.__name__}); restore it, or rerun what wrote it") from None


def unwritable_reason(folder: Path) -> Optional[str]:
    """None when a file can be made in the existing ``folder``, else why not (the OS's words). A probe file, not
    ``os.access``: a read-only mount or a full disk refuses even root."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as err:
        return err.strerror or str(err)


def make_folder(path: Path, flag: str) -> Path:
    """Creates ``path`` (and parents); an invalid or unwritable path is a one-line error naming the flag."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{flag} {path} cannot be used as a folder ({err.strerror or err}); pass a writable "
                        f"folder") from None
    reason = unwritable_reason(path)
    if reason:
        raise UserError(f"{flag} {path} cannot be used as a folder ({reason}); pass a writable folder")
    return path
