"""Pre-train a backbone with a margin head on all classes of a dataset, or evaluate a checkpoint (--eval_only).

    python train_own.py -d synthetic -n vit_face_small -e 30 -b 128 --lr 1e-3 --outdir runs/pretrain
    python train_own.py -d casia100 --eval_only -r runs/pretrain/best.pth
"""
import json

from config import parse_args
from engine import pretrain, test_report
from util.errors import UserError
from util.run_log import RunLog
from util.run_setup import model_and_data_from_args, run_main, settings_from_args, start_run


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], forgetting=False)
    if args.eval_only and not args.resume:
        raise UserError("--eval_only needs the checkpoint to evaluate: -r PATH")
    outdir, device = start_run(args, "runs/pretrain")
    model, model_args, data = model_and_data_from_args(args)
    model.to(device)
    settings = settings_from_args(args, outdir, device, model_args)
    if args.eval_only:
        report = test_report(model, data, settings)
    else:
        run_log = RunLog(outdir, tensorboard=not args.no_tensorboard)
        report = pretrain(model, data, settings, run_log, outdir / "best.pth")
        run_log.close()
    (outdir / "test_accuracy.json").write_text(json.dumps(report, indent=2))
    for convention in ("original", "plain"):
        print(f"test accuracy ({convention} convention): {report[f'test_acc_{convention}']:.2f}%")
    print(f"per-class accuracies: {outdir / 'test_accuracy.json'}")


if __name__ == "__main__":
    run_main(main)
