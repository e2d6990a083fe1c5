"""Pre-train a backbone with a margin head on all classes of a dataset, or evaluate a checkpoint (--eval_only).

    python train_own.py -d synthetic -n vit_face_small -e 30 -b 128 --lr 1e-3 --outdir runs/pretrain
    python train_own.py -d casia100 --eval_only -r runs/pretrain/best.pth
    python train_own.py -d synthetic -n vit_face_small ... --exclude_classes id_003,id_017   # never sees them
    python train_own.py -w 0 --batch_size 2 --lora_rank 0 --model CKPT   # the original test/test_own.py line"""
from pathlib import Path
from typing import Dict

from config import parse_args
from data import without_classes
from data.class_names import class_indices, split_names
from engine.evaluation import test_report
from engine.pretraining import pretrain
from run_setup import begin_run, make_folder, model_and_data_from_args, run_main, settings_from_args, setup
from util.distributed import is_main_process
from util.errors import UserError
from util.files import write_json
from util.run_lock import LOCK_NAME, lock_run_folder
from util.run_log import RunLog

INTERRUPTED = "best.pth holds the best epoch so far; pre-training does not resume, rerun with --overwrite"


def report_path(args) -> Path:
    """Where --eval_only writes: --outdir if given, else next to the checkpoint under the checkpoint's name."""
    checkpoint = Path(args.resume)
    return Path(args.outdir) / "test_accuracy.json" if args.outdir else \
        checkpoint.with_name(f"{checkpoint.stem}_test_accuracy.json")


def check_outdir(args, outdir: Path) -> None:
    """Pre-training into a folder that holds files replaces them only with --overwrite. The caller holds the folder's
    lock, so no other run can fill it between this check and the first write."""
    if outdir.is_dir() and any(p.name != LOCK_NAME for p in outdir.iterdir()) and not args.overwrite:
        raise UserError(f"{outdir} is not empty (a pre-trained model may be there); pass --overwrite to replace it, "
                        f"or another --outdir")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], forgetting=False)
    if args.eval_only and not args.resume:
        raise UserError("--eval_only needs the checkpoint to evaluate: -r PATH (or --model PATH)")
    device = setup(args)
    outdir = report_path(args).parent if args.eval_only else Path(args.outdir or "runs/pretrain")
    if not args.eval_only:
        lock_run_folder(outdir)
        check_outdir(args, outdir)
    model, model_args, data = model_and_data_from_args(args)
    if args.exclude_classes:
        data = without_classes(data, class_indices(split_names(args.exclude_classes), data.train.classes,
                                                   "--exclude_classes"))
    model.to(device)
    settings = settings_from_args(args, outdir, device, model_args)
    if args.eval_only:
        report = test_report(model, data.test, settings.test_batch_size, device, settings.amp)
        written = report_path(args)
    else:
        begin_run(args, outdir)
        run_log = RunLog(outdir, tensorboard=not args.no_tensorboard)
        report = pretrain(model, data, settings, run_log, outdir / "best.pth")
        run_log.close()
        written = outdir / "test_accuracy.json"
    if is_main_process():  # under torchrun every process has the report; one writes and prints it
        write_report(report, written)


def write_report(report: Dict[str, object], written: Path) -> None:
    """Writes the test report as JSON and prints the overall accuracies."""
    make_folder(written.parent, "--outdir")
    write_json(written, report)
    for convention in ("original", "plain"):
        print(f"test accuracy ({convention} convention): {report[f'test_acc_{convention}']:.2f}%")
    print(f"per-class accuracies: {written}")


if __name__ == "__main__":
    run_main(main, INTERRUPTED)
