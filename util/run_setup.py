"""The pieces every entry point assembles: run folder, logging, device, data and model, from parsed flags.

This is the one adapter from the flag namespace to the explicit keywords the rest of the code takes.
"""
import json
import logging
import random
import sys
from pathlib import Path
from typing import Callable, Dict, Tuple

import numpy as np
import torch

from backbone import build_model
from backbone.classifier import Classifier
from data import RunData, build_data, class_folders, resolve_root
from engine import OptimConfig, RunSettings
from util.checkpoint import load_checkpoint, load_model_weights
from util.device import resolve_device, use_bf16
from util.errors import UserError
from util.run_log import setup_logging

log = logging.getLogger(__name__)


def run_main(main: Callable[[], object]) -> None:
    """Runs an entry point; a user mistake prints one line (no traceback) and exits with status 2."""
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: finished tasks are saved; rerun with --resume_run to continue", file=sys.stderr)
        sys.exit(130)


def start_run(args, default_outdir: str) -> Tuple[Path, torch.device]:
    """Creates the run folder, sets up logging and seeds, and writes the resolved flags to config.json."""
    outdir = Path(args.outdir or default_outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    setup_logging(args.log_level, outdir)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    (outdir / "config.json").write_text(json.dumps(vars(args), indent=2, default=str))
    log.debug("run folder %s, device %s", outdir, device)
    return outdir, device


def model_from_args(args, num_classes: int) -> Tuple[Classifier, Dict[str, object]]:
    """Builds the model; with ``-r`` its saved model arguments are the defaults and its weights are loaded."""
    checkpoint = load_checkpoint(args.resume) if args.resume else {}
    saved = checkpoint.get("model_args", {})
    if saved.get("num_classes", num_classes) != num_classes:
        raise UserError(f"checkpoint {args.resume} has {saved['num_classes']} classes, the dataset {num_classes}")
    given = {"net": args.net, "head": args.head, "depth": args.vit_depth, "image_size": args.image_size,
             "margin_s": args.margin_s, "margin_m": args.margin_m}
    defaults = {"net": "vit", "head": "cosface"}
    model_args = {k: v if v is not None else saved.get(k, defaults.get(k)) for k, v in given.items()}
    model_args["num_classes"] = num_classes
    model = build_model(**model_args)
    model_args.update(depth=len(model.backbone.blocks), image_size=model.backbone.image_size)
    if checkpoint:
        load_model_weights(model, checkpoint["model"], f"checkpoint {args.resume}")
        log.info("loaded %s", args.resume)
    return model, model_args


def model_and_data_from_args(args) -> Tuple[Classifier, Dict[str, object], RunData]:
    """Builds the model for the dataset's classes and decodes the dataset at the model's input size."""
    root = resolve_root(args.data_mode, args.data_root, args.cache_dir, args.synthetic_seed)
    model, model_args = model_from_args(args, len(class_folders(root)))
    data = build_data(root, model.backbone.image_size, val_ratio=args.val_ratio, seed=args.seed)
    return model, model_args, data


def optim_from_args(args) -> OptimConfig:
    return OptimConfig(opt=args.opt, lr=args.lr, weight_decay=args.weight_decay, opt_eps=args.opt_eps,
                       opt_betas=args.opt_betas, momentum=args.momentum, epochs=args.epochs, min_lr=args.min_lr,
                       warmup_epochs=args.warmup_epochs, warmup_lr=args.warmup_lr)


def settings_from_args(args, outdir: Path, device: torch.device, model_args: Dict[str, object]) -> RunSettings:
    """Pre-training parses no forgetting flags; RunSettings' defaults stand in for them."""
    protocol = {k: getattr(args, k) for k in ("data_ratio", "few_shot", "few_shot_num", "selection", "eval_every")
                if hasattr(args, k)}
    return RunSettings(outdir=outdir, batch_size=args.batch_size,
                       test_batch_size=args.test_batch_size or 5 * args.batch_size, device=device,
                       amp=use_bf16(args.precision, device), seed=args.seed, optim=optim_from_args(args),
                       model_args=model_args, config=json.loads(json.dumps(vars(args), default=str)), **protocol)

