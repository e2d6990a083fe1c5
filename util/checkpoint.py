"""The one save and one load path for checkpoints.

A checkpoint is a dict of plain tensors and primitives (loadable with ``weights_only=True``):
``model`` (a state dict without LoRA factors: GS-LoRA's updates are merged in), ``model_args`` (what
``backbone.build_model`` needs to rebuild the model), ``config`` (the run's resolved flags) and optional extras
(``task``, ``epoch``, ``method`` state). The original repository's checkpoints (plain state dicts with its own key
names) load too.
"""
import os
from pathlib import Path
from typing import Any, Dict, Union

import torch
import torch.nn as nn

from backbone.face_vit import convert_original_checkpoint, is_original_checkpoint
from backbone.lora import without_lora
from util.errors import UserError


def save_checkpoint(path: Union[str, Path], **content: Any) -> None:
    """Writes atomically (temporary file + rename), so an interrupted save never leaves a truncated file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(content, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Union[str, Path]) -> Dict[str, Any]:
    """Loads a checkpoint as a dict with at least ``model``; a bare state dict is wrapped."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: say which, without a traceback
        raise UserError(f"cannot read checkpoint {path}: {exc.__class__.__name__}: {str(exc)[:200]}") from None
    if not isinstance(content, dict):
        raise UserError(f"checkpoint {path} holds a {type(content).__name__}, not a state dict")
    if "model" not in content:
        content = {"model": content}
    if is_original_checkpoint(content["model"]):
        content["model"] = convert_original_checkpoint(content["model"])
    return content


def load_model_weights(model: nn.Module, state_dict: Dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Loads merged weights into ``model``; LoRA factors are neither expected nor loaded.

    Raises UserError naming the missing, unexpected and mis-shaped keys when the checkpoint does not fit.
    """
    own = without_lora(model.state_dict())
    given = without_lora(state_dict)
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    mis_shaped = [f"{k} {tuple(given[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own.keys() & given.keys() if own[k].shape != given[k].shape]
    if missing or unexpected or mis_shaped:
        parts = [f"{label}: {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected),
                                     ("shape mismatch", sorted(mis_shaped))) if keys]
        raise UserError(f"{source} does not fit the model ({'; '.join(parts)}); check --net, --vit_depth, "
                        f"--image_size and --head")
    model.load_state_dict(given, strict=False)
