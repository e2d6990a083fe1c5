"""Every command line of the original implementation's seven scripts parses, to the right thing, with our parser.

``ORIGINAL_LINES`` holds one entry per ``python`` line of the original's scripts/ (active and commented-out runs
alike) with the values of reference Sec. 7.3, flag for flag in the scripts' order, and the shell variables filled in:
the checkpoints by the paths the scripts name, every ``--outdir`` (built there from the loop values and ``$TIME``)
by ``OUTDIR``. Each is parsed by the entry point that stands in for the original script it calls; a refused line
fails with argparse's one error line, which names the flag. A few resolved values per line (method, tasks, epochs
...) are checked too, written out by hand rather than derived from the parser's own tables.

Deliberate fillings: the 1-task section of run_cl_forget_open.sh uses $NUM_FIRST_CLS and $PER_FORGET_CLS without
setting them (its assignments are commented out); it gets the values of the same section of run_cl_forget.sh
(10 and 90), as the reference describes it. One of the 11 ImageNet100 lines (run_cl_forget_image.sh, L2) carries
the original's typo ``--l2_lambda 0.05--wandb_group``, which the original's own parser refused too: it is listed as
an expected refusal, naming the flag.
"""
import argparse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from config import parse_args
from train_own_forget_cl import forgetting_args

CKPT = ("results/ViT-P8S8_casia100_cosface_s1-1200-150de-depth6new/"
        "Backbone_VIT_Epoch_1185_Batch_45020_Time_2024-09-26-03-26_checkpoint.pth")
OLD_CKPT = ("./results/ViT-P8S8_casia100_cosface_s1-1200-150de-depth6/"
            "Backbone_VIT_Epoch_1110_Batch_82100_Time_2023-10-18-18-22_checkpoint.pth")
DEPTH12_CKPT = ("results/ViT-P8S8_casia100_cosface_s1-1200-150de-depth12new-bs480/"
                "Backbone_VIT_Epoch_1111_Batch_83320_Time_2024-12-13-17-21_checkpoint.pth")
IMAGENET_CKPT = "/path/to/.cache/torch/hub/checkpoints/vit_b_16-c867db91.pth"
OUTDIR = "exps/original-run"


def pretraining(argv: list[str]) -> argparse.Namespace:
    return parse_args("train_own.py", forgetting=False, argv=argv)


def single_step(argv: list[str]) -> argparse.Namespace:
    return forgetting_args(single_step=True, argv=argv)


def continual(argv: list[str]) -> argparse.Namespace:
    return forgetting_args(argv=argv)


def continual_open(argv: list[str]) -> argparse.Namespace:
    """train_own_forget_cl_open.py defaulted --open_cls_num to 5; scripts/run_cl_forget_open.sh passes it."""
    return forgetting_args(argv=["--open_cls_num", "5", *argv])


# The original entry points and ours. train_own_forget_open.py: its lines all pass --open_cls_num, and
# scripts/run_forget_open.sh runs that setting with train_own_forget.py.
ENTRY_POINTS: dict[str, Callable[[list[str]], argparse.Namespace]] = {
    "train/train_own.py": pretraining,
    "test/test_own.py": pretraining,
    "train/train_own_forget.py": single_step,
    "train/train_own_forget_open.py": single_step,
    "train/train_own_forget_cl.py": continual,
    "train/train_own_forget_cl_open.py": continual_open,
}


@dataclass(frozen=True)
class Line:
    script: str  # the original script
    run: str  # the run it starts, as its comment names it
    entry: str  # the original entry point it calls
    command: str  # its arguments, shell variables filled in
    expect: dict[str, object] = field(default_factory=dict)  # resolved values
    waits: str = ""  # why it cannot parse yet
    refused: str = ""  # the parser error it must give (a typo the original's parser refused too)

    @property
    def id(self) -> str:
        return f"{self.script}:{self.run}"


def pretraining_line(run: str, batch: int, head: str, lr: str, depth: int, tail: str = "") -> Line:
    command = (f"-b {batch} -w 0,1,2,3,4,5,6,7 -d casia100 -n VIT -e 1200 -head {head} --outdir {OUTDIR} "
               f"--warmup-epochs 10 --lr {lr} --num_workers 8 --lora_rank 0 --decay-epochs 150 "
               f"--vit_depth {depth} {tail}")
    expect = dict(eval_only=False, epochs=1200, batch_size=batch, head=head.lower(), lr=float(lr), vit_depth=depth,
                  warmup_epochs=10, net="vit")
    return Line("run_sub.sh", run, "train/train_own.py", command, expect)


def single_step_line(run: str, batch: int, depth: int, ckpt: str, group: str, tail: str) -> Line:
    """run_forget.sh: F = 90, P = 10, EPOCH = 100, RATIO = 0.1, GS-LoRA++ with the group-lasso warm-up."""
    command = (f"-b {batch} -w 0 -d casia100 -n VIT -e 100 -head CosFace --grouping block --data_ratio 0.1 "
               f"--alpha_epoch 20 --outdir {OUTDIR} --warmup-epochs 0 --lr 1e-2 --num_workers 8 --lora_rank 8 "
               f"--decay-epochs 100 --wandb_group {group} --vit_depth {depth} --num_of_first_cls 90 "
               f"--per_forget_cls 10 -r {ckpt} {tail}")
    expect = dict(method="gs_lora_pp", num_tasks=1, epochs=100, num_of_first_cls=90, per_forget_cls=10,
                  batch_size=batch, vit_depth=depth, lora_rank=8, warmup_alpha=True, big_alpha=0.01,
                  few_shot="--few_shot" in tail.split())
    return Line("run_forget.sh", run, "train/train_own_forget.py", command, expect)


def baseline_line(script: str, entry: str, run: str, first: int, tasks: int, method: str, lr: str, warmup: int,
                  tail: str, open_cls: int = 0) -> Line:
    """A baseline of run_cl_forget.sh or run_cl_forget_open.sh (the two scripts share every baseline line)."""
    command = (f"-b 48 -w 0 -d casia100 -n VIT -e 100 -head CosFace --outdir {OUTDIR} --warmup-epochs {warmup} "
               f"--lr {lr} --num_workers 8 --lora_rank 0 --decay-epochs 100 --vit_depth 6 "
               f"--num_of_first_cls {first} --per_forget_cls {100 - first} -r {CKPT} --BND 110 --min-lr 1e-5 "
               f"--num_tasks {tasks} --one_stage {tail}")
    expect = dict(method=method, num_tasks=tasks, epochs=100, num_of_first_cls=first, per_forget_cls=100 - first,
                  lr=float(lr), warmup_epochs=warmup, batch_size=48, few_shot="--few_shot" in tail.split(),
                  open_cls_num=open_cls)
    return Line(script, run, entry, command, expect)


# Section "CL baseline 1 task" (F = 10, P = 90): run, method, lr, warm-up epochs, the line's own flags.
ONE_TASK_BASELINES = (
    ("retrain", "retrain", "3e-4", 5, "--retrain --l2_lambda 0 --wandb_group forget_clbaseline_one_new --replay "
                                      "--few_shot --few_shot_num 4"),
    ("LIRF", "lirf", "1e-4", 0, "--LIRF --wandb_group forget_clbaseline_one_new --replay --few_shot --few_shot_num 4"),
    ("Lwf10", "lwf", "1e-4", 0, "--Lwf --Lwf_lambda_remain 2 --replay --wandb_group rebuttal_forget_clbaseline "
                                "--few_shot --few_shot_num 4"),
    ("Lwf50", "lwf", "1e-4", 0, "--Lwf --Lwf_lambda_remain 10 --replay --wandb_group rebuttal_forget_clbaseline "
                                "--few_shot --few_shot_num 4"),
    ("SCRUB", "scrub", "1e-4", 0, "--SCRUB --wandb_group forget_clbaseline_one_new --opt adam --sgda_smoothing 0 "
                                  "--few_shot --few_shot_num 4 --wandb_offline"),
    ("SCRUB50", "scrub", "1e-4", 0, "--SCRUB --wandb_group forget_clbaseline_one_new --opt adam --sgda_smoothing 0 "
                                    "--sgda_gamma 2 --few_shot --few_shot_num 4"),
    ("SCRUB-S", "scrub_s", "1e-4", 0, "--SCRUB --wandb_group forget_clbaseline_one_new --opt adam "
                                      "--sgda_smoothing 0.05 --few_shot --few_shot_num 4"),
    ("l2", "l2", "1e-4", 0, "--l2 --l2_lambda 0.05 --wandb_group forget_clbaseline_one_new --replay --few_shot "
                            "--few_shot_num 4"),
    ("ewc", "ewc", "1e-4", 0, "--ewc --ewc_lambda 10 --replay --wandb_group forget_clbaseline_one_new --few_shot "
                              "--few_shot_num 4"),
    ("MAS", "mas", "1e-4", 0, "--MAS --mas_lambda 5 --replay --wandb_group forget_clbaseline_one_new --few_shot "
                              "--few_shot_num 4"),
    ("FDR", "fdr", "1e-3", 0, "--FDR --FDR_lambda 50 --replay --wandb_group rebuttal_forget_clbaseline --few_shot "
                              "--few_shot_num 4"),
    ("DER", "der", "1e-3", 0, "--Der --DER_lambda 0.01 --replay --wandb_group rebuttal_forget_clbaseline --few_shot "
                              "--few_shot_num 4"),
    ("DER++", "der_pp", "1e-3", 0, "--Der --DER_lambda 0.05 --replay --wandb_group rebuttal_forget_clbaseline "
                                   "--DER_plus --DER_plus_lambda 0.005 --few_shot --few_shot_num 4"),
)

# Section "CL baseline 4 tasks" (F = 80, P = 20): run, method, lr, warm-up epochs, the line's own flags, and whether
# run_cl_forget.sh appends --few_shot --few_shot_num 4 (run_cl_forget_open.sh never does).
FOUR_TASK_BASELINES = (
    ("l2", "l2", "1e-4", 0, "--l2 --l2_lambda 0.1 --wandb_group forget_clbaseline_one --replay", True),
    ("ewc", "ewc", "1e-4", 0, "--ewc --ewc_lambda 10 --replay --wandb_group forget_clbaseline", True),
    ("MAS", "mas", "1e-4", 0, "--MAS --mas_lambda 0.005 --replay --wandb_group forget_clbaseline", True),
    ("Lwf", "lwf", "1e-4", 0, "--Lwf --Lwf_lambda_remain 10 --replay --wandb_group rebuttal_forget_clbaseline", True),
    ("DER", "der", "1e-3", 0, "--Der --DER_lambda 0.01 --replay --wandb_group rebuttal_forget_clbaseline", True),
    ("DER++", "der_pp", "1e-3", 0, "--Der --DER_lambda 0.005 --replay --wandb_group rebuttal_forget_clbaseline "
                                   "--DER_plus --DER_plus_lambda 0.005", True),
    ("FDR", "fdr", "1e-3", 0, "--FDR --FDR_lambda 50 --replay --wandb_group rebuttal_forget_clbaseline", False),
    ("LIRF", "lirf", "1e-4", 0, "--LIRF --wandb_group forget_clbaseline_one_new --replay", True),
    ("SCRUB", "scrub", "1e-4", 0, "--SCRUB --wandb_group forget_clbaseline_one_new --opt adam --sgda_smoothing 0",
     False),
    ("SCRUB-S", "scrub_s", "1e-4", 0, "--SCRUB --wandb_group forget_clbaseline_one_new --opt adam "
                                      "--sgda_smoothing 0.1", False),
    ("retrain", "retrain", "3e-4", 5, "--retrain --l2_lambda 0 --wandb_group forget_clbaseline_one_new --replay",
     False),
)


def gs_lora_cl_line(script: str, entry: str, run: str, batch: int, tail: str, open_cls: int = 0) -> Line:
    """The 4-task GS-LoRA(++) runs (F = 80, P = 20)."""
    command = (f"-b {batch} -w 0 -d casia100 -n VIT -e 100 -head CosFace --outdir {OUTDIR} --warmup-epochs 0 "
               f"--lr 1e-2 --num_workers 8 --lora_rank 8 --decay-epochs 100 --vit_depth 6 --num_of_first_cls 80 "
               f"--per_forget_cls 20 -r {CKPT} --BND 105 --beta 0.15 --alpha 0.0001 --min-lr 1e-5 --num_tasks 4 "
               f"{tail}")
    expect = dict(method="gs_lora_pp", num_tasks=4, epochs=100, num_of_first_cls=80, per_forget_cls=20,
                  batch_size=batch, lora_rank=8, BND=105.0, few_shot="--few_shot" in tail.split(),
                  open_cls_num=open_cls)
    return Line(script, run, entry, command, expect)


def forget_open_line(run: str, method: str, lr: str, rank: int, group: str, tail: str) -> Line:
    """run_forget_open.sh: F = 70, P = 30, OPEN = 40, RATIO = 0.1, the older depth-6 checkpoint."""
    command = (f"-b 48 -w 0 -d casia100 -n VIT -e 100 -head CosFace --grouping block --data_ratio 0.1 "
               f"--alpha_epoch 0 --open_cls_num 40 --outdir {OUTDIR} --warmup-epochs 0 --lr {lr} --num_workers 8 "
               f"--lora_rank {rank} --decay-epochs 100 --wandb_group {group} --vit_depth 6 --num_of_first_cls 70 "
               f"--per_forget_cls 30 -r {OLD_CKPT} {tail}")
    expect = dict(method=method, num_tasks=1, epochs=100, num_of_first_cls=70, per_forget_cls=30, open_cls_num=40,
                  lr=float(lr), data_ratio=0.1)
    return Line("run_forget_open.sh", run, "train/train_own_forget_open.py", command, expect)


def imagenet_line(run: str, method: str, lr: str, warmup: int, rank: int, tail: str, refused: str = "") -> Line:
    command = (f"-b 48 -w 0 -d imagenet100 -n VIT_B16 -e 100 -head CosFace --outdir {OUTDIR} "
               f"--warmup-epochs {warmup} --lr {lr} --num_workers 8 --lora_rank {rank} --decay-epochs 100 "
               f"--vit_depth 6 --num_of_first_cls 80 --per_forget_cls 20 -r {IMAGENET_CKPT} --data_ratio 0.05 "
               f"{tail}")
    expect = dict(method=method, data_mode="imagenet100", net="vit_b16", num_tasks=4, epochs=100,
                  num_of_first_cls=80, per_forget_cls=20, data_ratio=0.05, lr=float(lr), lora_rank=rank,
                  batch_size=48, num_workers=8, resume=str(Path(IMAGENET_CKPT).resolve()))
    return Line("run_cl_forget_image.sh", run, "train/train_own_forget_cl.py", command, expect, refused=refused)


IMAGENET_BASELINE = "--BND 110 --min-lr 1e-5 --num_tasks 4 --one_stage"

ORIGINAL_LINES = (
    # run_sub.sh: pre-training (one active run, two commented).
    pretraining_line("CosFace depth 12", 480, "CosFace", "3e-4", 12),
    pretraining_line("Softmax depth 12", 1920, "Softmax", "12e-4", 12, "--min-lr 2e-5"),
    pretraining_line("CosFace depth 18", 960, "CosFace", "6e-4", 18, "--min-lr 2e-5"),
    # test_sub.sh: the original test script.
    Line("test_sub.sh", "test", "test/test_own.py", f"-w 0 --batch_size 2 --lora_rank 0 --model {OLD_CKPT}",
         dict(eval_only=True, resume=str(Path(OLD_CKPT).resolve()), batch_size=2, device="cuda")),
    # run_forget.sh: single-step GS-LoRA++ (the few-shot run is the active one).
    single_step_line("full data", 48, 6, CKPT, "data",
                     "--BND 110 --beta 0.05 --alpha 0.005 --min-lr 1e-5 --warmup_alpha "
                     "--big_alpha 0.01 --prototype --pro_f_weight 0.005 --pro_r_weight 0 --average_weight "
                     "--ema_epoch 50 --ema_decay 0.9"),
    single_step_line("few shot", 4, 6, CKPT, "fewshot",
                     "--BND 110 --beta 0.15 --alpha 0.01 --min-lr 1e-5 --warmup_alpha "
                     "--big_alpha 0.01 --prototype --pro_f_weight 0.5 --pro_r_weight 0 --average_weight "
                     "--ema_epoch 50 --ema_decay 0.9 --few_shot --few_shot_num 2 --wandb_name "
                     "Aug5prototype-Few2start90forget10lr1e-2beta0.15alpha0.01epoch100-fpweight0.5-rpweight0 "
                     "--aug_num 5"),
    single_step_line("12 layers", 48, 12, DEPTH12_CKPT, "rebuttal_beta",
                     "--BND 110 --beta 0.03 --alpha 0.005 --min-lr 1e-5 "
                     "--warmup_alpha --big_alpha 0.01 --prototype --pro_f_weight 0.001 --pro_r_weight 0.001 "
                     "--average_weight --ema_epoch 50 --ema_decay 0.9"),
    # run_cl_forget.sh: every baseline on 1 task, GS-LoRA(++) and every baseline on 4 tasks.
    *(baseline_line("run_cl_forget.sh", "train/train_own_forget_cl.py", f"1 task {run}", 10, 1, method, lr, warmup,
                    tail) for run, method, lr, warmup, tail in ONE_TASK_BASELINES),
    gs_lora_cl_line("run_cl_forget.sh", "train/train_own_forget_cl.py", "4 tasks GS-LoRA", 48,
                    "--wandb_group forget_cl_new --cl_beta_list 0.2 0.25 0.25 0.2 --prototype --pro_f_weight 0.01 "
                    "--average_weight --ema_epoch 30 --ema_decay 0.9 --cl_prof_list 0.01 0.01 0.01 0.01"),
    gs_lora_cl_line("run_cl_forget.sh", "train/train_own_forget_cl.py", "4 tasks GS-LoRA few shot", 4,
                    "--wandb_group forget_cl_new --cl_beta_list 0.3 0.4 0.28 0.2 --few_shot --few_shot_num 4 "
                    "--BND_pro 50 --prototype --pro_f_weight 0.017 --average_weight --ema_epoch 30 --ema_decay 0.9 "
                    "--cl_prof_list 0.015 0.06 0.025 0.012"),
    *(baseline_line("run_cl_forget.sh", "train/train_own_forget_cl.py", f"4 tasks {run}", 80, 4, method, lr, warmup,
                    tail + (" --few_shot --few_shot_num 4" if few_shot else ""))
      for run, method, lr, warmup, tail, few_shot in FOUR_TASK_BASELINES),
    # run_cl_forget_open.sh: the same baselines with 5 missing classes, and its active GS-LoRA++ run.
    *(baseline_line("run_cl_forget_open.sh", "train/train_own_forget_cl_open.py", f"1 task {run}", 10, 1, method,
                    lr, warmup, tail, open_cls=5) for run, method, lr, warmup, tail in ONE_TASK_BASELINES),
    gs_lora_cl_line("run_cl_forget_open.sh", "train/train_own_forget_cl_open.py", "4 tasks GS-LoRA", 48,
                    "--wandb_group forget_cl_open --warmup_alpha --big_alpha 0.015 --alpha_epoch 30 "
                    "--cl_beta_list 0.14 0.14 0.2 0.15 --prototype --pro_f_weight 0.0003", open_cls=5),
    *(baseline_line("run_cl_forget_open.sh", "train/train_own_forget_cl_open.py", f"4 tasks {run}", 80, 4, method,
                    lr, warmup, tail, open_cls=5) for run, method, lr, warmup, tail, _ in FOUR_TASK_BASELINES),
    # run_forget_open.sh: single-step with 40 missing classes (L2 is the active run).
    forget_open_line("GS-LoRA", "gs_lora", "1e-2", 8, "forget-open", "--BND 110 --beta 0.1 --alpha 0 --min-lr 1e-5"),
    forget_open_line("L2", "l2", "1e-4", 0, "forget-open-baseline-new",
                     "--min-lr 1e-5 --one_stage --l2 --l2_lambda 0.01 --replay --wandb_offline"),
    forget_open_line("EWC", "ewc", "1e-4", 0, "forget-open-baseline-new",
                     "--min-lr 1e-5 --one_stage --ewc --ewc_lambda 10 --replay"),
    forget_open_line("MAS", "mas", "1e-4", 0, "forget-open-baseline-new",
                     "--min-lr 1e-5 --one_stage --MAS --mas_lambda 1 --replay"),
    forget_open_line("retrain", "retrain", "3e-4", 0, "forget-open-baseline-new",
                     "--min-lr 1e-5 --one_stage --retrain --replay"),
    # run_cl_forget_image.sh: ImageNet100, 4 tasks (all commented in the original).
    imagenet_line("GS-LoRA", "gs_lora_pp", "1e-2", 0, 8,
                  "--BND 105 --beta 0.15 --alpha 0.0001 --min-lr 1e-5 --num_tasks 4 "
                  "--wandb_group forget_cl_new --cl_beta_list 0.2 0.25 0.25 0.25 --prototype --pro_f_weight 0.05 "
                  "--average_weight --ema_epoch 30 --ema_decay 0.9"),
    imagenet_line("l2", "l2", "1e-4", 0, 0,
                  f"{IMAGENET_BASELINE} --l2 --l2_lambda 0.05--wandb_group forget_clbaseline_one --replay",
                  refused="argument --l2_lambda: invalid float value: '0.05--wandb_group'"),
    imagenet_line("ewc", "ewc", "1e-4", 0, 0, f"{IMAGENET_BASELINE} --ewc --ewc_lambda 3 --replay "
                  "--wandb_group forget_clbaseline"),
    imagenet_line("MAS", "mas", "1e-4", 0, 0, f"{IMAGENET_BASELINE} --MAS --mas_lambda 0.002 --replay "
                  "--wandb_group forget_clbaseline"),
    imagenet_line("Lwf", "lwf", "1e-4", 0, 0, f"{IMAGENET_BASELINE} --Lwf --Lwf_lambda_remain 10 --replay "
                  "--wandb_group rebuttal_forget_clbaseline"),
    imagenet_line("DER", "der", "1e-4", 0, 0,
                  f"{IMAGENET_BASELINE} --Der --DER_lambda 0.01 --replay --wandb_group newDER"),
    imagenet_line("DER++", "der_pp", "1e-4", 0, 0,
                  f"{IMAGENET_BASELINE} --Der --DER_lambda 0.01 --replay --wandb_group newDER "
                  "--DER_plus --DER_plus_lambda 0.5"),
    imagenet_line("FDR", "fdr", "1e-3", 0, 0,
                  "--BND 110 --min-lr 1e-8 --num_tasks 4 --one_stage --FDR --FDR_lambda 40 "
                  "--replay --wandb_group rebuttal_forget_clbaseline"),
    imagenet_line("SCRUB", "scrub", "1e-4", 0, 0,
                  f"{IMAGENET_BASELINE} --SCRUB --wandb_group forget_clbaseline_one_new "
                  "--opt adam --sgda_smoothing 0 --sgda_gamma 20"),
    imagenet_line("SCRUB-S", "scrub_s", "1e-4", 0, 0,
                  f"{IMAGENET_BASELINE} --SCRUB --wandb_group forget_clbaseline_one_new "
                  "--opt adam --sgda_smoothing 0.05 --sgda_gamma 10"),
    imagenet_line("retrain", "retrain", "3e-4", 5, 0, f"{IMAGENET_BASELINE} --retrain --l2_lambda 0 "
                  "--wandb_group forget_clbaseline_one_new --replay"),
)

# python lines per original script (74 in all; 63 on faces).
LINES_PER_SCRIPT = {"run_sub.sh": 3, "test_sub.sh": 1, "run_forget.sh": 3, "run_cl_forget.sh": 26,
                    "run_cl_forget_open.sh": 25, "run_forget_open.sh": 5, "run_cl_forget_image.sh": 11}


def parse(line: Line, capsys) -> argparse.Namespace:
    """The line parsed by its entry point; a refused line fails the test with the parser's error, naming the flag."""
    try:
        return ENTRY_POINTS[line.entry](line.command.split())
    except SystemExit:
        error = capsys.readouterr().err.strip()
        pytest.fail(f"{line.id} ({line.entry}) is refused: {error}", pytrace=False)


@pytest.mark.parametrize("line", [pytest.param(line, id=line.id, marks=[pytest.mark.skip(reason=line.waits)]
                                               if line.waits else []) for line in ORIGINAL_LINES])
def test_original_command_line_parses_to_the_right_run(line, capsys):
    if line.refused:
        with pytest.raises(SystemExit):
            ENTRY_POINTS[line.entry](line.command.split())
        assert capsys.readouterr().err.strip() == f"error: {line.refused}"
        return
    args = parse(line, capsys)
    resolved = {key: getattr(args, key) for key in line.expect}
    assert resolved == line.expect, line.id


def test_every_line_of_the_seven_scripts_is_listed():
    assert Counter(line.script for line in ORIGINAL_LINES) == LINES_PER_SCRIPT
    assert not any(line.waits for line in ORIGINAL_LINES)  # every line parses, ImageNet100 included
    assert [line.id for line in ORIGINAL_LINES if line.refused] == ["run_cl_forget_image.sh:l2"]  # the typo


def test_pre_training_accepts_every_flag_of_the_original_pre_training_parser(capsys):
    """Every flag of the original train/train_own.py with its default value (reference Sec. 7.2); -n VIT, as the
    default VITs (the shifted-patch variant, used by no script) is not implemented."""
    line = Line("train/train_own.py", "every flag", "train/train_own.py",
                "-w cpu -e 125 -b 256 -d casia100 -n VIT -head ArcFace -r x.pth --outdir out --opt adamw "
                "--opt-eps 1e-8 --opt-betas 0.9 0.999 --momentum 0.9 --weight-decay 0.05 --sched cosine --lr 5e-4 "
                "--lr-noise 0.4 0.8 --lr-noise-pct 0.67 --lr-noise-std 1.0 --warmup-lr 1e-6 --min-lr 1e-5 "
                "--decay-epochs 30 --warmup-epochs 3 --cooldown-epochs 10 --patience-epochs 10 --decay-rate 0.1 "
                "--dr 0.1 --num_workers 4 --lora_rank 8 --lora_pos FFN --wandb_offline --vit_depth 10")
    args = parse(line, capsys)
    assert (args.device, args.epochs, args.batch_size, args.head, args.vit_depth) == ("cpu", 125, 256, "arcface", 10)
    assert not args.eval_only


def test_original_test_script_flags_evaluate_the_model_they_name(capsys):
    """test/test_own.py's flags (reference Sec. 7.2): --model is the checkpoint to evaluate, --network and --depth
    choose the model, --lora_rank and --lora_pos change nothing (checkpoints hold merged weights)."""
    line = Line("test/test_own.py", "every flag", "test/test_own.py", "--model m.pth --network VIT --batch_size 20 "
                "--lora_rank 0 --lora_pos FFN --depth 6 --num_workers 4 -w cpu")
    args = parse(line, capsys)
    assert args.eval_only and args.resume == str(Path("m.pth").resolve())
    assert (args.net, args.vit_depth, args.batch_size, args.device) == ("vit", 6, 20, "cpu")
    assert "model" not in vars(args)


def test_model_and_another_resume_checkpoint_is_a_parser_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        pretraining(["--model", "a.pth", "-r", "b.pth"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: --model a.pth and -r b.pth name two checkpoints; pass one\n"


def test_a_refused_line_fails_naming_the_flag(capsys):
    line = Line("made-up.sh", "unknown flag", "train/train_own.py", "-e 3 --no_such_flag 1")
    with pytest.raises(pytest.fail.Exception, match="unrecognized arguments: --no_such_flag 1"):
        parse(line, capsys)
