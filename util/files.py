"""JSON files of a run folder: atomic writes, and reads whose failures are one-line user errors."""
import json
import os
from pathlib import Path
from typing import Dict

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
