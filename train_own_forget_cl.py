"""Continual forgetting with any registered method: a sequence of tasks, each forgetting --per_forget_cls classes.

    python train_own_forget_cl.py -d synthetic -r runs/pretrain/best.pth --num_of_first_cls 80 \
        --per_forget_cls 20 --num_tasks 4 --method gs_lora --cl_beta_list 0.2 0.25 0.25 0.2 ...
    python train_own_forget_cl.py -d casia100 -r runs/pretrain/best.pth --plan plan.json ...   # tasks by name"""
from pathlib import Path

from config import parse_args
from data.class_order import class_order
from data.task_plan import named_tasks, plan_tasks
from engine.forgetting import check_run_folder, run_forgetting
from engine.method import METHODS
from run_setup import begin_run, check_forgetting_folder, model_and_data_from_args, run_main, settings_from_args, setup
from util.distributed import is_main_process
from util.run_lock import lock_run_folder
from util.run_log import RunLog
from util.table import format_table


def forgetting_args(single_step: bool = False, argv: list[str] | None = None):
    """The parsed flags; single-step is one task and defaults --big_alpha to 5e-4 as its original parser did."""
    one_task = {"fixed": {"num_tasks": 1}, "defaults": {"big_alpha": 5e-4}} if single_step else {}
    return parse_args(__doc__.splitlines()[0], argv=argv, **one_task)


def forget(single_step: bool = False) -> None:
    """Parses flags, builds data, model, task plan and method, runs the tasks and prints the result table."""
    args = forgetting_args(single_step)
    device = setup(args)
    outdir = Path(args.outdir or f"runs/{args.method}")
    lock_run_folder(outdir)
    check_forgetting_folder(args, outdir)
    model, model_args, data = model_and_data_from_args(args)
    if args.named_tasks:
        tasks = named_tasks(data.train.classes, args.named_tasks, args.named_missing,
                            "--plan" if args.plan_file else "--forget_classes")
    else:
        tasks = plan_tasks(class_order(data.num_classes, args.order_seed), args.num_of_first_cls, args.per_forget_cls,
                           args.num_tasks, args.open_cls_num, single_step_layout=single_step)
    check_run_folder(outdir, args.resume_run, tasks, data.train.classes)  # before begin_run writes anything
    method = METHODS.get(args.method).from_args(model.to(device), args)
    begin_run(args, outdir)
    run_log = RunLog(outdir, tensorboard=not args.no_tensorboard)
    results = run_forgetting(method, data, tasks, settings_from_args(args, outdir, device, model_args), run_log,
                             resume=args.resume_run)
    run_log.close()
    if is_main_process():
        print(format_table({args.method: results}))


if __name__ == "__main__":
    run_main(forget)
