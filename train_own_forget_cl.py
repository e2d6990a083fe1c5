"""Continual forgetting with any registered method: a sequence of tasks, each forgetting --per_forget_cls classes.

    python train_own_forget_cl.py -d synthetic -r runs/pretrain/best.pth --num_of_first_cls 80 \
        --per_forget_cls 20 --num_tasks 4 --method gs_lora --cl_beta_list 0.2 0.25 0.25 0.2 ...
"""
from config import parse_args
from data.class_order import class_order
from data.task_plan import plan_tasks
from engine import METHODS, run_forgetting
from util.run_log import RunLog
from util.run_setup import model_and_data_from_args, run_main, settings_from_args, start_run
from util.table import format_table


def forget(single_step: bool = False) -> None:
    """Parses flags, builds data, model, task plan and method, runs the tasks and prints the result table."""
    args = parse_args(__doc__.splitlines()[0], forgetting=True)
    if single_step:
        args.num_tasks = 1
    outdir, device = start_run(args, f"runs/{args.method}")
    model, model_args, data = model_and_data_from_args(args)
    tasks = plan_tasks(class_order(data.num_classes, args.seed), args.num_of_first_cls, args.per_forget_cls,
                       args.num_tasks, args.open_cls_num, single_step_layout=single_step)
    model.to(device)
    method = METHODS.get(args.method).from_args(model, args)
    run_log = RunLog(outdir, tensorboard=not args.no_tensorboard)
    results = run_forgetting(method, data, tasks, settings_from_args(args, outdir, device, model_args), run_log,
                             resume=args.resume_run)
    run_log.close()
    print(format_table({args.method: results}))


if __name__ == "__main__":
    run_main(forget)
