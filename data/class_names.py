"""Classes named by their folder names ("forget 0000045 and 0000099"), checked against a dataset: an unknown name is a
one-line error that lists the closest names, so a typo is caught before anything is trained."""
import difflib
from typing import Iterable

from util.errors import UserError


def split_names(values: Iterable[str]) -> list[str]:
    """Names given as separate arguments, comma-separated, or both (``a,b c``), in order, blanks dropped."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def class_indices(names: Iterable[str], classes: list[str], flag: str) -> list[int]:
    """The label (folder position) of each of ``names``; an unknown or repeated name is a UserError naming ``flag``."""
    position = {name: i for i, name in enumerate(classes)}
    names = list(names)
    for name in names:
        if name not in position:
            close = difflib.get_close_matches(name, classes, n=3, cutoff=0.5)
            hint = f"; closest: {', '.join(close)}" if close else "; the classes are the folder names under train/"
            raise UserError(f"{flag}: no class named {name!r}{hint}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UserError(f"{flag} names {', '.join(repeated)} more than once")
    return [position[name] for name in names]
