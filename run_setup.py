"""The assembly of a run from parsed flags: run folder and its checks, logging, device, data and model; the one adapter
from the flag namespace to the explicit keywords the rest of the code takes."""
import dataclasses
import json
import logging
import random
import signal
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from audit.settings import audit_settings_from_args
from config import build_parser
from data import RunData, build_data, dataset_classes, resolve_root
from data.folders import stream_image_folder
from data.imagenet import imagenet_rows, imagenet_transform
from engine.evaluation import OutsideClasses
from engine.forgetting import check_run_folder
from engine.optim import OptimConfig
from engine.settings import RunSettings
from model import Classifier, build_model, load_model_weights, pretrained_weights
from util import distributed
from util.allocator import keep_freed_memory
from util.checkpoint import load_checkpoint
from util.device import resolve_device, use_bf16
from util.errors import UserError
from util.files import fixable_cause, make_folder, read_json, user_os_error, write_json
from util.run_lock import release_run_folders
from util.run_log import setup_logging

log = logging.getLogger(__name__)

# Flags that may differ when a run is resumed: where and how fast it runs, and what it logs. Every other flag
# defines the protocol or the method and must match the run's config.json. validation_seed is derived from -r, which
# must match; plan_file's names (named_tasks, named_missing) are compared instead.
RESUME_MAY_CHANGE = {"config", "device", "workers_id", "num_workers", "outdir", "resume_run", "precision",
                     "no_tensorboard", "log_level", "test_batch_size", "one_stage", "validation_seed", "plan_file"}
RESUME_MAY_CHANGE_PREFIXES = ("ignored_", "switch_", "audit")  # audits measure a run, they do not define it
# The forgetting protocol's flags RunSettings takes; pre-training parses none of them.
PROTOCOL_FLAGS = ("data_ratio", "few_shot", "few_shot_num", "selection", "eval_every", "steps_per_task", "early_stop",
                  "early_stop_growth", "early_stop_goal", "no_retain")


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler's stop), raised where the run is so that it ends as Ctrl-C does."""


def _terminate(signum, frame):
    raise Terminated


def _stop(kind: str, message: object, status: int) -> None:
    """Prints ``kind: message`` as one line (naming the rank under torchrun) and exits with ``status``."""
    print(f"{kind}: {distributed.process_tag()}{message}", file=sys.stderr)
    sys.exit(status)


def run_main(main: Callable[[], object], interrupted: str = "finished tasks are saved; rerun with --resume_run "
                                                          "to continue") -> None:
    """Runs an entry point (util/allocator.py's kept heap). A user mistake or an OSError the user fixes (util/files.py
    USER_FIXABLE) is one line, exit 2; Ctrl-C and SIGTERM print ``interrupted``. A torchrun peer's stop: exit 1."""
    keep_freed_memory()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        main()
    except UserError as err:
        _stop("error", err, 2)
    except Terminated:
        _stop("terminated", interrupted, 128 + signal.SIGTERM)
    except KeyboardInterrupt:
        _stop("interrupted", interrupted, 130)
    except distributed.CollectiveFailed as err:
        _stop("error", err, 1)
    except Exception as err:  # an OSError the user fixes, even wrapped (util/files.py fixable_cause): one line
        cause = fixable_cause(err)
        if cause is None:
            raise
        _stop("error", user_os_error(cause), 2)
    finally:
        signal.signal(signal.SIGTERM, previous)
        release_run_folders()
        distributed.close_distributed()


def flags_as_json(args) -> dict[str, object]:
    """The parsed flags as written to config.json (paths and other objects as strings): what a resume compares."""
    return json.loads(json.dumps(vars(args), default=str))


def setup(args) -> torch.device:
    """The device (under torchrun: each process on its own GPU), logging to stderr and seeds; nothing is written yet."""
    device = distributed.init_distributed(resolve_device(args.device))
    setup_logging(args.log_level)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    return device


def begin_run(args, outdir: Path) -> None:
    """Creates the run folder, its run.log and config.json once every check (under torchrun: every process's) passed."""
    distributed.barrier()
    if not distributed.is_main_process():
        return
    make_folder(outdir, "--outdir")
    setup_logging(args.log_level, outdir)
    write_json(outdir / "config.json", flags_as_json(args))
    log.debug("run folder %s", outdir)


def check_forgetting_folder(args, outdir: Path) -> None:
    """Refuses an existing run without --resume_run, and a resume whose protocol or method flags differ from its own."""
    check_run_folder(outdir, args.resume_run)
    results_path, config_path = outdir / "results.json", outdir / "config.json"
    if not args.resume_run or not results_path.exists():
        return
    if not config_path.is_file():
        raise UserError(f"{config_path} is missing, so --resume_run cannot check that {results_path} was made with "
                        f"these flags; restore it, or start anew in another --outdir")
    given = flags_as_json(args)
    # A flag added after the run was made (absent from its config) had its default in it.
    defaults = flags_as_json(build_parser("", forgetting=True).parse_args([]))
    refuse_other_flags({**defaults, **read_json(config_path)}, given, str(config_path))
    saved = read_json(results_path).get("config")
    if saved is None:
        raise UserError(f"{results_path} holds no config (written by an older version): --resume_run cannot check "
                        f"it; start anew in another --outdir")
    refuse_other_flags({**defaults, **saved}, given, f"the config in {results_path}")


def refuse_other_flags(saved: dict[str, object], given: dict[str, object], where: str) -> None:
    """A UserError listing the protocol and method flags of ``saved`` (read from ``where``) that ``given`` changes."""
    differing = sorted(k for k in given.keys() | saved.keys()
                       if not k.startswith(RESUME_MAY_CHANGE_PREFIXES) and k not in RESUME_MAY_CHANGE
                       and given.get(k) != saved.get(k))
    if differing:
        shown = ", ".join(f"--{k} {saved.get(k)!r} -> {given.get(k)!r}" for k in differing[:4])
        more = " ..." if len(differing) > 4 else ""
        raise UserError(f"--resume_run with flags that differ from {where}: {shown}{more}; resume with the "
                        f"run's own flags or use a new --outdir")


def model_from_args(args, classes: list[str]) -> tuple[Classifier, dict[str, object], dict | None, dict]:
    """Builds the model for ``classes`` (with ``-r``: its model arguments as defaults, its weights loaded); returns it,
    its arguments, the -r file's full ImageNet head (or None) and the flags the -r file was made with."""
    num_classes = len(classes)
    checkpoint = load_checkpoint(args.resume) if args.resume else {}
    saved = checkpoint.get("model_args", {})
    if saved.get("num_classes", num_classes) != num_classes:
        raise UserError(f"checkpoint {args.resume} has {saved['num_classes']} classes, the dataset {num_classes}")
    given = {"net": args.net, "head": args.head, "depth": args.vit_depth, "image_size": args.image_size,
             "margin_s": args.margin_s, "margin_m": args.margin_m, "num_classes": num_classes}
    defaults = {"net": "vit", "head": "cosface"}
    model_args = {k: v if v is not None else saved.get(k, defaults.get(k)) for k, v in given.items()}
    model = build_model(**model_args, pretrained_file=getattr(args, "pretrained_file", None))
    model_args.update(depth=len(model.backbone.blocks), image_size=model.backbone.image_size,
                      head=getattr(model.backbone, "head_type", model_args["head"]))
    full_head = None
    if checkpoint:
        state, full_head = pretrained_weights(checkpoint["model"], classes)
        load_model_weights(model, state, f"checkpoint {args.resume}")
        log.info("loaded %s", args.resume)
    return model, model_args, full_head, checkpoint.get("config") or {}


def validation_seed(args, made_with: dict) -> int:
    """The validation split's seed: the -r model's own, so selection never scores its training images; else --seed."""
    seed = made_with.get("validation_seed", made_with.get("seed"))
    if seed is None:
        return args.seed
    if made_with.get("val_ratio", args.val_ratio) < args.val_ratio:
        log.warning("--val_ratio %s is larger than the %s the -r model held out: part of the validation split are "
                    "images it trained on", args.val_ratio, made_with["val_ratio"])
    return seed


def model_and_data_from_args(args) -> tuple[Classifier, dict[str, object], RunData]:
    """The model for the dataset's classes and the dataset at its input size (and --imagenet900_root's classes)."""
    # Under torchrun one process generates the synthetic faces before the others look for them.
    root = distributed.in_turn(lambda: resolve_root(args.data_mode, args.data_root, args.cache_dir,
                                                    args.synthetic_seed))
    model, model_args, full_head, made_with = model_from_args(args, dataset_classes(args.data_mode, root))
    args.validation_seed = validation_seed(args, made_with)
    data = build_data(root, model.backbone.image_size, val_ratio=args.val_ratio, seed=args.validation_seed,
                      workers=args.num_workers, data_mode=args.data_mode)
    if getattr(args, "imagenet900_root", None):
        data.outside = outside_classes(Path(args.imagenet900_root), full_head, model.backbone.image_size,
                                       args.num_workers, args.resume)
    return model, model_args, data


def outside_classes(root: Path, full_head: dict[str, torch.Tensor] | None, image_size: int, workers: int,
                    weights: str) -> OutsideClasses:
    """The ImageNet-900 folder (``root/<wnid>/*``) streamed with the ImageNet transform, and the full head."""
    if full_head is None:
        raise UserError(f"--imagenet900_root needs -r with a 1000-way ImageNet head (torchvision's "
                        f"vit_b_16-c867db91.pth); {weights or 'no -r'} has none")
    images = stream_image_folder(root, "", imagenet_transform(image_size), workers)
    rows = torch.tensor(imagenet_rows(images.classes, str(root)))
    return OutsideClasses(images, rows, full_head["weight"].float(), full_head["bias"].float())


def settings_from_args(args, outdir: Path, device: torch.device, model_args: dict[str, object]) -> RunSettings:
    """Pre-training parses no forgetting flags; RunSettings' defaults stand in for them."""
    protocol = {k: getattr(args, k) for k in PROTOCOL_FLAGS if hasattr(args, k)}
    optim = OptimConfig(**{field.name: getattr(args, field.name) for field in dataclasses.fields(OptimConfig)})
    return RunSettings(outdir=outdir, batch_size=args.batch_size, device=device, amp=use_bf16(args.precision, device),
                       test_batch_size=args.test_batch_size or 5 * args.batch_size, optim=optim, model_args=model_args,
                       seed=args.seed, config=flags_as_json(args), audit=audit_settings_from_args(args), **protocol)

