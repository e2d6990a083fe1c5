"""The one argument parser for every entry point.

The original command lines stay valid (``--num_of_first_cls``, ``--Lwf``, ``--model CKPT`` ...); ``--method NAME`` picks
a method, which adds its flags. Precedence: defaults, a YAML file (``--config``), the command line. Flags the original
accepted that change nothing here form one group and say so; every parser error is one line ``error: ...`` (exit 2)."""
import argparse
import json
import math
import sys
from pathlib import Path

from timm.optim import list_optimizers

import baselines  # noqa: F401  (registers every module in baselines/)
import gs_lora  # registers GS-LoRA and GS-LoRA++
from audit.settings import AuditSettings
from backbone import BACKBONES
from baselines.common import add_shared_arguments
from data.class_names import split_names
from data import DATA_MODES
from engine.method import METHODS
from head import HEADS

SELECTION_RULES = ("val", "test", "last")
DEFAULT_DATA_ROOTS = {"casia100": "./data/faces_webface_112x112_sub100_train_test", "imagenet100": "./data/imagenet100"}
PATH_FLAGS = ("resume", "data_root", "cache_dir", "outdir", "config", "imagenet900_root", "pretrained_file",
              "audit_oracle", "plan_file")
# The numbered task plan (data/task_plan.py plan_tasks), its defaults (order_seed: --seed); a plan by names replaces it.
NUMBERED_PLAN = {"num_of_first_cls": 90, "per_forget_cls": 10, "num_tasks": 9, "open_cls_num": 0, "order_seed": None}

# The original picked a method with one switch each; these map to --method values.
LEGACY_SWITCHES = {"--l2": "l2", "--ewc": "ewc", "--MAS": "mas", "--Lwf": "lwf", "--Der": "der", "--DER_plus": "der_pp",
                   "--FDR": "fdr", "--SCRUB": "scrub", "--LIRF": "lirf", "--retrain": "retrain"}

# The original parsers' flags that change nothing here: (names, values, why). Every parser accepts the first set,
# which the original pre-training parser (train/train_own.py) had too; the forgetting parsers also the second, the
# pre-training parser also the third.
# timm's scheduler factory read the schedule flags, but only its step, plateau and noise schedules used them.
WANDB = "Weights & Biases setting; runs log to log.jsonl, results.json and TensorBoard here"
IGNORED_EVERYWHERE = (
    (("--decay-epochs",), 1, "step-schedule interval in epochs; the cosine schedule has none"),
    (("--decay-rate", "--dr"), 1, "step-schedule decay factor; the cosine schedule has none"),
    (("--cooldown-epochs",), 1, "post-cycle epochs at --min-lr; discarded by the original too: the cosine ends at -e"),
    (("--patience-epochs",), 1, "plateau-schedule patience; the cosine schedule has none"),
    (("--lr-noise",), "+", "learning-rate noise epochs; no original script set it, and no noise is added here"),
    (("--lr-noise-pct",), 1, "learning-rate noise limit (no noise here, see --lr-noise)"),
    (("--lr-noise-std",), 1, "learning-rate noise std (no noise here, see --lr-noise)"),
    (("--wandb_offline",), 0, WANDB))
# Pre-training trains plain linears (the original's --lora_rank 0), so where LoRA would go changes nothing there.
IGNORED_IN_PRETRAINING = ((("--lora_pos",), 1, "LoRA position; pre-training trains no LoRA (forgetting runs take it)"),)
IGNORED_IN_FORGETTING = (
    *(((flag,), 1, WANDB) for flag in ("--wandb_group", "--wandb_name")),
    (("--average_weight",), 0, "EMA of the weights; the original only logged it (wrongly in continual runs)"),
    (("--ema_decay",), 1, "EMA decay (see --average_weight)"),
    (("--ema_epoch",), 1, "first EMA epoch (see --average_weight)"),
    (("--aug_num",), 1, "RandAugment count; a no-op in the original (its transform never reached the images)"),
    (("--si",), 0, "SI switch; the original never implemented SI"),
    (("--si_c",), 1, "SI weight; the original never implemented SI"),
    (("--n_fisher_sample",), 1, "the original's sub-sampled Fisher; EWC's importance uses the task's remain subset"),
    *(((flag,), 1, "image-generation leftover, unused by the original")
      for flag in ("--samples_per_class", "--lambda_tv", "--lambda_div", "--gen_lr", "--gen_iteration")))

# The ignored flag's value that is what pre-training does anyway (the original's default and every script's): no
# warning.
HONOURED = {"lora_pos": gs_lora.DEFAULTS["lora_pos"]}
# GS-LoRA's ablation switches; a method without LoRA refuses a value other than GS-LoRA's default.
LORA_SWITCHES = ("lora_pos", "grouping")
DEVICES = ["auto", "cpu", "cuda"]
SWITCH = "store_true"  # add_flags' type of an on/off flag


class OneLineParser(argparse.ArgumentParser):
    """Prints a parser error as the one line ``error: ...`` (exit status 2), as ``run_main`` prints a ``UserError``."""

    def error(self, message: str):
        self.exit(2, f"error: {message}\n")


def at_least(minimum):
    """An argparse type: a number of ``minimum``'s type (int or float), refused below ``minimum``."""
    kind = type(minimum)

    def number(text: str):
        value = kind(text)
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        return value

    number.__name__ = kind.__name__  # argparse's "invalid int value" names the type by this
    return number


def timm_optimizer(name: str) -> str:
    """An argparse type: a timm optimizer name (``lookahead_adamw`` too), or ``rmsp``, the original SCRUB's RMSprop."""
    name = name.lower()
    if name != "rmsp" and name.split("_")[-1] not in list_optimizers():
        raise argparse.ArgumentTypeError(f"unknown timm optimizer '{name}' (e.g. adamw, adam, sgd, lamb; "
                                         f"timm.optim.list_optimizers() lists them)")
    return name


def backbone_name(name: str) -> str:
    """An argparse type: a registered backbone (any case) or ``timm:NAME``, a timm model by name."""
    name = name.lower()
    if name not in BACKBONES and not (name.startswith("timm:") and len(name) > 5):
        raise argparse.ArgumentTypeError(f"invalid choice '{name}' (choose from {', '.join(BACKBONES.names())}, "
                                         f"or timm:NAME)")
    return name


def add_flags(group, rows) -> None:
    """Adds one flag per row: (names, type or SWITCH, default, help[, more add_argument keywords])."""
    for names, kind, default, text, *more in rows:
        shape = {"action": kind} if kind == SWITCH else {"type": kind, "default": default}
        group.add_argument(*names.split(), **shape, help=text, **(more[0] if more else {}))


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """The flags of every entry point that pre-trains or forgets."""
    add_flags(parser.add_argument_group("system"), [
        ("--config", None, None, "YAML file of flag defaults (command line wins)"),
        ("--device", None, "auto", "where to run", {"choices": DEVICES}),
        ("-w --workers_id", None, None, "original flag: 'cpu' or GPU ids such as '0'; only selects CPU or CUDA here"),
        ("--num_workers", at_least(0), 4, "threads that decode an in-memory dataset at start-up; processes that "
         "decode a streamed one (imagenet100) while running (0: in the main process)"),
        ("--seed", at_least(0), 1337, "seed of the class order (unless --order_seed), subsets and model init"),
        ("--outdir", None, "", "run folder (config.json, results.json, checkpoints, events)"),
        ("--precision", None, "auto", "bf16 autocast (auto: on CUDA) or fp32", {"choices": ["auto", "fp32", "bf16"]}),
        ("--no_tensorboard", SWITCH, False, "do not write TensorBoard events"),
        ("--log_level", None, "INFO", "logging level of the run's messages")])
    add_flags(parser.add_argument_group("data"), [
        ("-d --data_mode", None, "casia100", "casia100 (the papers' faces), imagefolder (any train/ + test/ tree), "
         "synthetic (built in) or imagenet100 (trees of wnid folders, streamed)", {"choices": DATA_MODES}),
        ("--data_root", None, None, "folder of train/<class>/* and test/<class>/* (casia100, imagefolder, imagenet100; "
         f"default {DEFAULT_DATA_ROOTS['casia100']}, for imagenet100 {DEFAULT_DATA_ROOTS['imagenet100']})"),
        ("--cache_dir", None, "data/cache", "where the synthetic faces are generated once"),
        ("--synthetic_seed", at_least(0), 0, "seed of the synthetic identities"),
        ("--image_size", at_least(1), None, "input side in pixels; images are resized to it (default: the size's)"),
        ("--val_ratio", float, 0.1, "fraction of each class's training images held out for model selection"),
        ("--test_batch_size", at_least(1), None, "evaluation batch (default 5 x --batch_size)")])
    add_flags(parser.add_argument_group("model"), [
        ("-n --net --network", backbone_name, None, "backbone: VIT (= vit_face, the papers' 112 px model), "
         "vit_face_reduced/_small/_tiny, VIT_B16 (torchvision's ViT-B/16 for imagenet100, -r vit_b_16-c867db91.pth), "
         "vit_tv_tiny (tests) or timm:NAME (weights: --pretrained_file); default: -r's, else VIT", {"metavar": "NET"}),
        ("--pretrained_file", None, None, "local weights of -n timm:NAME (timm's layout); nothing is downloaded"),
        ("-head --head", str.lower, None, "head (default: the -r file's, else CosFace)", {"choices": HEADS.names()}),
        ("--margin_s", float, None, "margin head scale s (default 64)"),
        ("--margin_m", float, None, "margin m (CosFace 0.35, ArcFace 0.5)"),
        ("--vit_depth --depth", at_least(1), None, "number of Transformer blocks (default: -r's, else the size's)"),
        ("-r --resume", None, "", "pre-trained checkpoint to start from"),
        ("--lora_rank", int, 8, "LoRA rank r on the linears --lora_pos names (train_own.py ignores it: plain linears)"),
        ("--lora_alpha", float, 1.0, "LoRA alpha; the update is scaled by alpha/r")])
    add_flags(parser.add_argument_group("optimisation (timm factories)"), [
        ("-e --epochs", at_least(1), 125, "epochs per task (an epoch = a remain pass)"),
        ("-b --batch_size", at_least(1), 256, "batch per remain/forget side; under torchrun the global batch"),
        ("--opt", timm_optimizer, "adamw", "timm optimizer name"),
        ("--opt-eps", at_least(0.0), 1e-8, "optimizer epsilon"),
        ("--opt-betas", float, None, "optimizer betas", {"nargs": "+"}),
        ("--momentum", at_least(0.0), 0.9, "SGD momentum"),
        ("--weight-decay", at_least(0.0), 0.05, "decoupled weight decay on matrices (not biases or norms)"),
        ("--sched", None, "cosine", "learning-rate schedule, per epoch", {"choices": ["cosine"]}),
        ("--lr", at_least(0.0), 5e-4, "peak learning rate"),
        ("--warmup-lr", at_least(0.0), 1e-6, "learning rate at epoch 0"),
        ("--min-lr", at_least(0.0), 1e-5, "cosine floor"),
        ("--warmup-epochs", at_least(0), 3, "linear warm-up epochs")])


def add_forgetting_args(parser: argparse.ArgumentParser) -> None:
    add_flags(parser.add_argument_group("forgetting protocol"), [
        ("--num_of_first_cls", at_least(1), None, "F: classes kept before the first task (task i forgets order[F-i*P : "
         "F-i*P+P]; default 90)"),
        ("--per_forget_cls", at_least(1), None, "P: classes forgotten per task (default 10)"),
        ("--order_seed", at_least(0), None, "the class order's own seed (default --seed): --seed varies, tasks stay"),
        ("--num_tasks", at_least(1), None, "number of forgetting tasks (1 = single-step; default 9)"),
        ("--open_cls_num", at_least(0), None, "missing-class setting: remembered classes without training data"),
        ("--forget_classes", None, None, "forget these classes (folder names, space- or comma-separated) in one task "
         "instead of the seeded order; every other class is remembered", {"nargs": "+", "metavar": "NAME"}),
        ("--plan", None, None, 'continual forgetting by names: a JSON file {"tasks": [[names], ...], "missing": '
         "[names]} of class folder names per task and remembered classes without data (docs/forgetting.md)",
         {"dest": "plan_file", "metavar": "JSON"}),
        ("--imagenet900_root --missing_root", None, None, "ImageNet100's Acc_m: a folder of <wnid>/<images> of the 900 "
         "classes outside ImageNet100, scored with the -r file's 1000-way head before and after every task"),
        ("--data_ratio", float, 0.1, "fraction of each split's training images used"),
        ("--few_shot", SWITCH, False, "use --few_shot_num images per class instead"),
        ("--few_shot_num", at_least(1), 4, "images per class in few-shot mode"),
        ("--selection", None, "val", "checkpoint selection per task: best H on the validation split (default), on "
         "the test set (the original's rule) or the last epoch", {"choices": SELECTION_RULES}),
        ("--eval_every", at_least(1), 100, "iterations between selection evaluations"),
        ("--steps_per_task", at_least(1), None, "end every task after exactly this many optimizer steps, whatever a "
         "method's epoch (equal budgets); the cosine schedule then runs over the steps"),
        ("--early_stop", at_least(1), None, "end a task (best weights kept) once the selection H has not improved for "
         "K evaluations and the forgetting goal is met (GS-LoRA: zero forget hinge); papers: off", {"metavar": "K"}),
        ("--early_stop_growth", at_least(0.0), 0.0, "with --early_stop K, the patience is max(K, ceil(R x the task's "
         "evaluations so far)), so late-improving tasks wait longer; 0 = K alone", {"metavar": "R"}),
        ("--early_stop_goal", None, "method", "what --early_stop also waits for: the method's forgetting goal "
         "(GS-LoRA: zero forget hinge) or none (the selection H alone, whose Acc_f term already rewards forgetting)",
         {"choices": ("method", "none")}),
        ("--no_retain", SWITCH, False, "forget without retain data: no remain training image, no remain loss terms, an "
         "epoch is a forget-data pass (--selection val still scores remain classes); methods needing them refuse it"),
        ("--method", str.lower, None, "forgetting method (default gs_lora, or an original switch's such as --ewc)",
         {"choices": METHODS.names()}),
        ("--resume_run", SWITCH, False, "continue the run in --outdir after its last finished task (same flags)")])


def add_audit_args(parser: argparse.ArgumentParser) -> None:
    """The audits of what was forgotten (audit/): off by default, so the papers' protocol is unchanged."""
    default = AuditSettings()
    add_flags(parser.add_argument_group("audits of forgetting (audit/; docs/audits.md)"), [
        ("--audit", SWITCH, False, "audit every task's final model: membership inference on the forget set, a kNN "
         "probe on the embeddings, TAR at FAR 1e-3 and relearn attacks; stored under 'audit' in results.json"),
        ("--audit_k", at_least(1), list(default.ks), "images per forgotten class per relearn attack", {"nargs": "+"}),
        ("--audit_steps", at_least(1), default.steps, "optimizer steps of every relearn attack"),
        ("--audit_lr", at_least(0.0), default.lr, "AdamW learning rate of the whole-model attack"),
        ("--audit_prompt_lr", at_least(0.0), default.prompt_lr, "AdamW lr of the prompt-only attack (learned tokens)"),
        ("--audit_prompts", at_least(1), default.prompts, "learned tokens of the prompt-only attack"),
        ("--audit_images", at_least(1), default.images, "images per class in every set an audit looks at (members, "
         "non-members, forget set, pairs)"),
        ("--audit_batch", at_least(1), default.batch, "images per relearn-attack step"),
        ("--audit_oracle", None, None, "the same plan's oracle (a train_oracle.py folder or a finished Retrain run), "
         "audited alike; the gaps (ours minus the oracle's) are reported", {"metavar": "RUN_DIR"})])


def check_audit_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Audit flags that do nothing without --audit, or an oracle folder that is not there, are parser errors."""
    if not args.audit and (args.audit_oracle or getattr(args, "audit_out", None)):
        parser.error("--audit_oracle and --audit_out need --audit")
    if args.audit_oracle and not Path(args.audit_oracle).is_dir():
        parser.error(f"--audit_oracle {args.audit_oracle} is not a folder; pass a finished Retrain run folder")


def ignored_flags(forgetting: bool) -> list[tuple[str, tuple[str, ...], object, str]]:
    """The original's flags that change nothing: (NAME, names, values: 0 switch, 1 or "+", why), as ``ignored_NAME``."""
    rows = IGNORED_EVERYWHERE + (IGNORED_IN_FORGETTING if forgetting else IGNORED_IN_PRETRAINING)
    return [(names[0].strip("-").replace("-", "_"), names, values, why) for names, values, why in rows]


def report_ignored_args(args: argparse.Namespace, forgetting: bool) -> None:
    """A ``warning:`` line per ignored flag that is set, so an old script's flag never changes nothing silently."""
    for name, names, _, why in ignored_flags(forgetting):
        value = getattr(args, f"ignored_{name}")
        if value not in (None, False) and str(value) != HONOURED.get(name):
            print(f"warning: {names[0]} is accepted for the original's command lines and ignored: {why}",
                  file=sys.stderr)


def add_compat_args(parser: argparse.ArgumentParser, forgetting: bool = True) -> None:
    """The original parsers' flags that change nothing here (train/train_own.py's; util/args.py's and the switches)."""
    g = parser.add_argument_group("accepted for the original command lines; no effect here")
    for name, names, values, why in ignored_flags(forgetting):
        shape = {"action": SWITCH} if values == 0 else {"metavar": name.upper(), "default": None,
                                                        "nargs": None if values == 1 else values}
        g.add_argument(*names, dest=f"ignored_{name}", help=why, **shape)
    if not forgetting:
        return
    g.add_argument("--one_stage", action="store_true", help="original switch that turned GS-LoRA off; pick a method")
    for flag, method in LEGACY_SWITCHES.items():
        g.add_argument(flag, dest=f"switch_{method}", action="store_true", help=f"same as --method {method}")


def build_parser(description: str, forgetting: bool = True) -> argparse.ArgumentParser:
    parser = OneLineParser(description=description)
    add_common_args(parser)
    if not forgetting:
        add_flags(parser.add_argument_group("pre-training and evaluation"), [
            ("--eval_only", SWITCH, False, "only test -r (writes NAME_test_accuracy.json beside it, or into --outdir)"),
            ("--model", None, None, "the original test/test_own.py's flag: --eval_only -r CKPT", {"metavar": "CKPT"}),
            ("--overwrite", SWITCH, False, "pre-train into an --outdir that already holds files"),
            ("--exclude_classes", None, None, "class folder names (space- or comma-separated) to leave out of training "
             "and validation (train_oracle.py's models never see a task's)", {"nargs": "+", "metavar": "NAME"})])
    else:
        add_forgetting_args(parser)
        add_audit_args(parser)
        add_shared_arguments(parser)
        for method in METHODS.unique():
            method.add_arguments(parser)
    add_compat_args(parser, forgetting)
    return parser


def _read_yaml(parser: argparse.ArgumentParser, path: str) -> dict[str, object]:
    """The mapping of flag names to values in the --config file; a missing or malformed file is a parser error."""
    import yaml
    try:
        values = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        parser.error(f"cannot read --config {path} ({err.strerror or err}); pass a YAML file of flag values")
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        parser.error(f"--config {path} is not valid YAML ({getattr(err, 'problem', None) or err}{where}); fix it")
    if values is not None and not isinstance(values, dict):
        parser.error(f"--config {path} holds a {type(values).__name__}, not flag names with values ('lr: 0.01')")
    return values or {}


def _yaml_value(parser: argparse.ArgumentParser, action: argparse.Action, value, path: str):
    """A YAML value through its flag's type and choices, checked like the command line ('1e-4' becomes a float)."""
    if value is None:
        return None
    many = action.nargs in ("*", "+")
    if isinstance(value, list) and not many:
        parser.error(f"--config {path}: {action.dest} takes one value, not a list")
    items = value if isinstance(value, list) else [value]
    try:
        items = [action.type(str(v)) if action.type else v for v in items]
    except (TypeError, ValueError, argparse.ArgumentTypeError) as err:
        parser.error(f"--config {path}: {action.dest}: {err}")
    invalid = [v for v in items if action.choices is not None and v not in action.choices]
    if invalid:
        parser.error(f"--config {path}: {action.dest}: invalid choice {invalid[0]!r} (choose from "
                     f"{', '.join(map(str, action.choices))})")
    return items if many else items[0]


def _apply_yaml_defaults(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    known, _ = parser.parse_known_args(argv)
    if not known.config:
        return
    values = _read_yaml(parser, known.config)
    actions = {a.dest: a for a in parser._actions}
    unknown = sorted(set(values) - set(actions))
    if unknown:
        parser.error(f"unknown keys in --config {known.config}: {', '.join(unknown)}; the keys are flag names "
                     f"without dashes, such as lr or batch_size")
    parser.set_defaults(**{k: _yaml_value(parser, actions[k], v, known.config) for k, v in values.items()})


def _resolve_method(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Maps the original switches (--ewc, --Der --DER_plus, --SCRUB --sgda_smoothing ...) onto --method."""
    switched = [m for m in LEGACY_SWITCHES.values() if getattr(args, f"switch_{m}", False)]
    switched = [m for m in switched if not (m == "der" and "der_pp" in switched)]
    if "scrub" in switched and getattr(args, "sgda_smoothing", 0) > 0:
        switched[switched.index("scrub")] = "scrub_s"
    if len(set(switched)) > 1:
        parser.error(f"the switches name several methods ({', '.join(switched)}); pass one")
    if switched and args.method and args.method != switched[0]:
        parser.error(f"--method {args.method} contradicts the switch for {switched[0]}")
    args.method = args.method or (switched[0] if switched else None)
    if args.method is None:
        if args.one_stage:
            parser.error("--one_stage turns GS-LoRA off in the original; name the baseline with --method")
        args.method = "gs_lora_pp" if args.prototype else "gs_lora"


def _check_finite(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses a NaN or infinite number: it passes every range check (nan < 0 is false), then diverges the loss."""
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        for number in value if isinstance(value, list) else [value]:
            if isinstance(number, float) and not math.isfinite(number):
                parser.error(f"argument {'/'.join(action.option_strings)}: must be a finite number, got {number}")


def _absolute_paths(parser: argparse.ArgumentParser, args: argparse.Namespace, flags: tuple[str, ...]) -> None:
    """The set path ``flags`` made absolute, symlinks resolved (config.json works from another directory)."""
    for flag in flags:
        value = getattr(args, flag, None)
        try:
            if value:
                setattr(args, flag, str(Path(value).expanduser().resolve()))
        except (RuntimeError, OSError):  # Python 3.11 raises RuntimeError for a loop, later versions OSError
            parser.error(f"argument --{flag}: {value} is a symlink loop")


def _read_plan(parser: argparse.ArgumentParser, path: str) -> tuple[list[list[str]], list[str]]:
    """The tasks (lists of class names) and missing classes of a --plan file; a bad file is a parser error."""
    shape = '{"tasks": [[names], ...], "missing": [names]}'
    try:
        plan = json.loads(Path(path).read_text())
    except OSError as err:
        parser.error(f"cannot read --plan {path} ({err.strerror or err})")
    except json.JSONDecodeError as err:
        parser.error(f"--plan {path} is not valid JSON ({err.msg} at line {err.lineno}); write {shape}")
    if not isinstance(plan, dict) or "tasks" not in plan:
        parser.error(f"--plan {path} is not {shape}")
    unknown = sorted(set(plan) - {"tasks", "missing"})
    if unknown:
        parser.error(f"--plan {path}: unknown key {', '.join(unknown)}; the keys are tasks and missing")

    def names(value) -> bool:
        return isinstance(value, list) and all(isinstance(name, str) for name in value)

    tasks, missing = plan["tasks"], plan.get("missing", [])
    if not isinstance(tasks, list) or not tasks or not all(names(task) for task in tasks):
        parser.error(f"--plan {path}: tasks must be a list of lists of class names, one list per task")
    if not names(missing):
        parser.error(f"--plan {path}: missing must be a list of class names")
    return [split_names(task) for task in tasks], split_names(missing)


def _resolve_plan(parser: argparse.ArgumentParser, args: argparse.Namespace, given: list[str],
                  fixed_tasks: int | None) -> None:
    """Sets ``named_tasks`` (per task its classes; None: the seeded order) and ``named_missing`` from --plan or
    --forget_classes, which replace the numbered flags (refused if ``given``); ``fixed_tasks``: a fixed task count."""
    flag = "--plan" if args.plan_file else "--forget_classes" if args.forget_classes else None
    args.named_tasks = args.named_missing = None
    if flag is None:
        vars(args).update({k: v for k, v in NUMBERED_PLAN.items() if getattr(args, k) is None})
        args.order_seed = args.seed if args.order_seed is None else args.order_seed
        return
    if args.plan_file and args.forget_classes:
        parser.error("--forget_classes and --plan both name the classes to forget; pass one")
    if given:
        parser.error(f"{flag} names the classes to forget; drop --{', --'.join(given)} (they define the seeded "
                     f"class order's plan)")
    args.named_tasks, args.named_missing = (_read_plan(parser, args.plan_file) if args.plan_file
                                            else ([split_names(args.forget_classes)], []))
    if not all(args.named_tasks):
        parser.error(f"{flag} names no class{' in one of its tasks' if args.plan_file else ''}")
    if fixed_tasks is not None and len(args.named_tasks) != fixed_tasks:
        parser.error(f"this entry point forgets in one task; --plan has {len(args.named_tasks)} (use "
                     f"train_own_forget_cl.py)")
    args.num_tasks, args.open_cls_num = len(args.named_tasks), len(args.named_missing)


def _check_protocol(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.imagenet900_root and args.open_cls_num:
        parser.error("--imagenet900_root and --open_cls_num both define Acc_m (classes outside the run, remembered "
                     "classes without data); pass one")
    if args.selection == "val" and args.val_ratio <= 0:
        parser.error("--selection val needs a validation split, but --val_ratio 0 leaves it empty; pass --val_ratio "
                     "> 0 (e.g. 0.1), or --selection test (the original's rule) or --selection last")
    for flag, what in (("early_stop_growth", "lengthens --early_stop's patience"),
                       ("early_stop_goal", "chooses what --early_stop waits for")):
        if getattr(args, flag) != parser.get_default(flag) and not args.early_stop:
            parser.error(f"--{flag} {what}; pass --early_stop K too")
    if args.early_stop and args.selection == "last":
        parser.error("--early_stop watches the selection H, which --selection last never evaluates; pass --selection "
                     "val (or test)")
    check_audit_args(parser, args)
    method = METHODS.get(args.method)
    for flag in LORA_SWITCHES:
        if getattr(args, flag) != gs_lora.DEFAULTS[flag] and not method.trains_lora:
            parser.error(f"--{flag} {getattr(args, flag)} places or groups GS-LoRA's LoRA, but --method "
                         f"{args.method} trains no LoRA; drop it")
    if args.no_retain and method.no_retain_refusal:
        parser.error(f"--method {args.method} cannot run with --no_retain: {method.no_retain_refusal}")


def parse_args(description: str, forgetting: bool = True, argv: list[str] | None = None,
               fixed: dict | None = None, defaults: dict | None = None) -> argparse.Namespace:
    """Parses and checks an entry point's flags; ``defaults`` replace defaults, ``fixed`` values the command line's."""
    parser = build_parser(description, forgetting)
    parser.set_defaults(**(defaults or {}))
    argv = sys.argv[1:] if argv is None else argv
    _apply_yaml_defaults(parser, argv)
    args = parser.parse_args(argv)
    report_ignored_args(args, forgetting)
    given = [k for k in NUMBERED_PLAN if getattr(args, k, None) is not None]  # on the command line or in YAML
    vars(args).update(fixed or {})
    if args.workers_id is not None and args.device == "auto":
        args.device = "cpu" if args.workers_id == "cpu" else "cuda"
    if not forgetting:
        model = vars(args).pop("model")  # the original test script's --model CKPT: --eval_only -r CKPT
        if model is not None:
            if args.resume and args.resume != model:
                parser.error(f"--model {model} and -r {args.resume} name two checkpoints; pass one")
            args.resume, args.eval_only = model, True
        if args.eval_only and args.exclude_classes:
            parser.error("--exclude_classes changes what is trained; --eval_only trains nothing")
    _check_finite(parser, args)
    if args.data_root is None:
        args.data_root = DEFAULT_DATA_ROOTS.get(args.data_mode, DEFAULT_DATA_ROOTS["casia100"])
    _absolute_paths(parser, args, PATH_FLAGS)
    if forgetting:
        _resolve_plan(parser, args, given, (fixed or {}).get("num_tasks"))
        _resolve_method(parser, args)
        _check_protocol(parser, args)
        METHODS.get(args.method).check_arguments(parser, args)
    return args


# The last flags of the tools that evaluate saved checkpoints (test_forget_cl.py, undo_forget.py).
EVALUATION_FLAGS = (("--device", None, "auto", "where to evaluate", {"choices": DEVICES}),
                    ("--test_batch_size", at_least(1), 256, "evaluation batch"),
                    ("--log_level", None, "INFO", "logging level"))


def parse_oracle_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    """Flags of train_oracle.py: whose plan to follow, where to write and run (the recipe is the -r model's own)."""
    parser = OneLineParser(description=description)
    add_flags(parser, [
        ("--run_dir", None, None, "the forgetting run whose plan and -r model's recipe to follow", {"required": True}),
        ("--outdir", None, None, "the oracle folder (default: 'oracle' beside --run_dir)"),
        ("--resume_run", SWITCH, False, "keep the finished tasks of --outdir, build the rest"),
        ("--data_root", None, None, "where the recipe's dataset is now (default: the run's own --data_root)"),
        ("--device", None, "auto", "where to train", {"choices": DEVICES}),
        ("--num_workers", at_least(0), 4, "threads that decode the dataset"),
        ("--no_tensorboard", SWITCH, False, "do not write TensorBoard events"),
        ("--log_level", None, "INFO", "logging level")])
    args = parser.parse_args(argv)
    _absolute_paths(parser, args, ("run_dir", "outdir", "data_root"))
    return args


def parse_eval_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    """Flags of test_forget_cl.py: which run folders to re-evaluate, and where."""
    parser = OneLineParser(description=description)
    add_flags(parser, [
        ("--run_dir", None, None, "run folders (each with results.json)", {"nargs": "+", "required": True}),
        ("--table_dir", None, None, "also write the combined table.csv/table.md here"), *EVALUATION_FLAGS])
    add_audit_args(parser)
    parser.add_argument("--audit_out", metavar="DIR", help="write each audited run's results.json into DIR/<run folder "
                        "name>/ (runs of one folder name: DIR/gs_lora_k3/ ...), leaving the run folder's as it is")
    args = parser.parse_args(argv)
    _check_finite(parser, args)
    check_audit_args(parser, args)
    return args
