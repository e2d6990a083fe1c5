"""Pre-train a backbone with a margin head on all classes of a dataset, or evaluate a checkpoint (--eval_only).

    python train_own.py -d synthetic -n vit_face_small -e 30 -b 128 --lr 1e-3 --outdir runs/pretrain
    python train_own.py -d casia100 --eval_only -r runs/pretrain/best.pth
    python train_own.py -d synthetic -n vit_face_small ... --exclude_classes id_003,id_017   # never sees them
    python train_own.py -w 0 --batch_size 2 --lora_rank 0 --model CKPT   # the original test/test_own.py line"""
from pathlib import Path

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


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], forgetting=False)
    if args.eval_only and not args.resume:
        raise UserError("--eval_only needs the checkpoint to evaluate: -r PATH (or --model PATH)")
    device = setup(args)
    checkpoint = Path(args.resume)  # --eval_only without --outdir writes next to it, under its name
    written = (checkpoint.with_name(f"{checkpoint.stem}_test_accuracy.json") if args.eval_only and not args.outdir
               else Path(args.outdir or "runs/pretrain") / "test_accuracy.json")
    outdir = written.parent
    if not args.eval_only:  # pre-training replaces a folder's files only with --overwrite
        lock_run_folder(outdir)  # so that no other run fills it between this check and the first write
        if outdir.is_dir() and any(p.name != LOCK_NAME for p in outdir.iterdir()) and not args.overwrite:
            raise UserError(f"{outdir} is not empty (a pre-trained model may be there); pass --overwrite to replace "
                            f"it, or another --outdir")
    model, model_args, data = model_and_data_from_args(args)
    if args.exclude_classes:
        data = without_classes(data, class_indices(split_names(args.exclude_classes), data.train.classes,
                                                   "--exclude_classes"))
    model.to(device)
    settings = settings_from_args(args, outdir, device, model_args)
    if args.eval_only:
        report = test_report(model, data.test, settings.test_batch_size, device, settings.amp)
    else:
        begin_run(args, outdir)
        run_log = RunLog(outdir, tensorboard=not args.no_tensorboard)
        report = pretrain(model, data, settings, run_log, outdir / "best.pth")
        run_log.close()
    if is_main_process():  # under torchrun every process has the report; one writes and prints it
        make_folder(outdir, "--outdir")
        write_json(written, report)
        for convention in ("original", "plain"):
            print(f"test accuracy ({convention} convention): {report[f'test_acc_{convention}']:.2f}%")
        print(f"per-class accuracies: {written}")


if __name__ == "__main__":
    run_main(main, "best.pth holds the best epoch so far; pre-training does not resume, rerun with --overwrite")
