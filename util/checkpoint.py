"""The one save and one load path for checkpoints: dicts of plain tensors and primitives (``weights_only=True``).

``model`` (a state dict, GS-LoRA's updates merged in), ``model_args`` (for ``model.build_model``), ``config`` (the
resolved flags) and optional extras (``task``, ``epoch``, ``method`` state); a bare state dict becomes ``model``."""
import re
from pathlib import Path
from typing import Any, Sequence

import torch

from util.errors import UserError
from util.files import atomic_write


def save_checkpoint(path: str | Path, **content: Any) -> None:
    """Writes atomically (``util.files.atomic_write``): a failed save never leaves a truncated file, and a full disk is
    one line (torch.save gets a Python file, whose write errors keep their errno)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: torch.save(content, fh))


def load_file(path: str | Path) -> dict[str, Any]:
    """Loads a dict saved by ``save_checkpoint`` (weights only); a missing or unreadable file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: say which, without a traceback or torch's long advice
        raise UserError(f"cannot read checkpoint {path} ({exc.__class__.__name__}): it is not a torch.save file of "
                        f"plain tensors (truncated, or not a checkpoint); use a checkpoint saved by this code or a "
                        f"plain state dict") from None
    if not isinstance(content, dict):
        raise UserError(f"checkpoint {path} holds a {type(content).__name__}, not a state dict")
    return content


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Loads a model checkpoint as a dict with at least ``model``; a bare state dict is wrapped."""
    content = load_file(path)
    return content if "model" in content else {"model": content}


def rename_keys(state_dict: dict[str, Any], renames: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``state_dict`` with each key renamed by the first (regex, replacement) of ``renames`` that matches it."""
    renamed = {}
    for key, value in state_dict.items():
        for pattern, replacement in renames:
            key, hits = re.subn(pattern, replacement, key)
            if hits:
                break
        renamed[key] = value
    return renamed
