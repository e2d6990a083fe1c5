"""One script for the first minutes on a GPU: does the CUDA path work end to end, how fast is it, and what would Table
3's protocol cost on this GPU. Prints one summary and writes it to <outdir>/gpu_check.json. Stages, each timed (a
failure is reported and the next still run): the environment, a short pre-training on CASIA-100 (a subset will do),
one GS-LoRA++ task, benchmarks/speed.py in fp32 and bf16, and ViT-B/16 in bf16.

    bash scripts/gpu_check.sh --data_root DIR          # about 5 minutes on one H200
    bash scripts/gpu_check.sh --dry-run                # the same stages at tiny sizes on the CPU (tested)"""
import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.speed import per_image_ratio, timed  # noqa: E402
from gs_lora import GSLoRAPlusPlus  # noqa: E402
from model import build_model  # noqa: E402
from util.device import autocast  # noqa: E402

PAPER_MODEL = ["-n", "VIT", "--vit_depth", "6", "-head", "CosFace"]
TINY_MODEL = ["-n", "vit_face_tiny", "-head", "softmax"]
GS_LORA_PP = ["--method", "gs_lora_pp", *GSLoRAPlusPlus.presets["paper"].split()]  # the paper scripts' flags


def check_environment(device: torch.device, net: str) -> dict[str, object]:
    """The model and its head on the device, one bf16 (CUDA) step: where every tensor ended up."""
    model = build_model(net, "cosface", 100).to(device)
    size = model.backbone.image_size
    with autocast(device, device.type == "cuda"):
        logits, _ = model(torch.rand(4, 3, size, size, device=device), torch.arange(4, device=device))
    logits.float().logsumexp(1).mean().backward()
    off_device = [n for n, p in model.named_parameters() if p.device != device or p.grad is None
                  or p.grad.device != device]
    if off_device:
        raise RuntimeError(f"parameters or gradients off {device}: {off_device[:3]}")
    info = {"torch": torch.__version__, "device": str(device), "logits_dtype": str(logits.dtype),
            "head_device": str(model.head.weight.device)}
    if device.type == "cuda":
        info.update(cuda=torch.version.cuda, gpu=torch.cuda.get_device_name(device),
                    memory_gb=round(torch.cuda.get_device_properties(device).total_memory / 2 ** 30, 1))
    return info


def run_script(args: list[str], log: Path) -> dict[str, object]:
    """Runs one of the project's entry points; its output goes to ``log``, a failure raises with its last line."""
    with open(log, "w") as out:
        done = subprocess.run([sys.executable, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        lines = log.read_text().strip().splitlines() or ["no output"]
        raise RuntimeError(f"exit {done.returncode}: {lines[-1]} (log: {log})")
    return {"log": str(log)}


def write_tiny_folder(root: Path, classes: int = 100, train: int = 10, test: int = 3, size: int = 16) -> Path:
    """A CASIA-shaped folder (train/ and test/ of <class>/<n>.png) of random 16-px images, for the dry run."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("test", test)):
        for c in range(classes):
            folder = root / split / f"{1000 + c}"
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(count):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{n}.png")
    return root


def stages(args, out: Path, device: torch.device) -> dict[str, Callable[[], dict[str, object]]]:
    """The checks in order, as closures over the run's flags."""
    tiny = args.dry_run
    data_root = str(write_tiny_folder(out / "tiny_faces")) if tiny else args.data_root
    data = ["-d", "casia100", "--data_root", data_root, "--device", device.type, "--num_workers", str(args.workers)]
    model = TINY_MODEL if tiny else PAPER_MODEL
    pretrain = ["-e", "1", "-b", "64"] if tiny else ["-e", "4", "-b", "240", "--lr", "3e-4", "--warmup-epochs", "1"]
    forget = ["--steps_per_task", "2", "--eval_every", "1"] if tiny else ["-e", "2", "--data_ratio", "0.5",
                                                                        "--eval_every", "20"]
    speed = ["benchmarks/speed.py", "--data_root", data_root, "--device", device.type, "--steps", str(args.steps)]
    speed += ["--configs", "tiny", "--eval_images", "240"] if tiny else ["--configs", "full"]

    def benchmark(name: str, *argv: str) -> Callable[[], dict[str, object]]:
        return lambda: run_script([*argv, "--json", str(out / f"{name}.json")], out / f"{name}.log")

    checks = {
        "environment": lambda: check_environment(device, "vit_face_tiny" if tiny else "vit_face"),
        "pre-training": lambda: run_script(["train_own.py", *data, *model, *pretrain, "--outdir", str(out / "pretrain"),
                                            "--no_tensorboard"], out / "pretrain.log"),
        "forgetting task": lambda: run_script(
            ["train_own_forget_cl.py", *data, *model, "-r", str(out / "pretrain" / "best.pth"), "--num_of_first_cls",
             "80", "--per_forget_cls", "20", "--num_tasks", "1", "-b", "48", "--warmup-epochs", "0", *GS_LORA_PP,
             *forget, "--outdir", str(out / "forget"), "--no_tensorboard"], out / "forget.log"),
        "benchmark fp32": benchmark("speed_fp32", *speed, "--precision", "fp32", "--side_by_side"),
        "benchmark bf16": benchmark("speed_bf16", *speed, "--precision", "bf16")}
    if not tiny:  # a ViT-B/16 step on 2 CPU cores takes minutes: the dry run leaves it out
        checks["vit_b16 bf16"] = benchmark("speed_vit", "benchmarks/speed.py", "--configs", "vit_b16", "--device",
                                           device.type, "--precision", "bf16", "--steps", str(args.steps),
                                           "--num_workers", str(args.workers))
    return checks


def attempt(check: Callable[[], dict[str, object]]) -> dict[str, object]:
    """``ok`` and the check's result, or its error: a check that fails is reported, and the next ones still run."""
    try:
        return {"ok": True, **check()}
    except Exception as err:
        return {"ok": False, "error": f"{type(err).__name__}: {err}"}


def benchmark_rows(out: Path) -> list[str]:
    """One line per measured configuration and precision, read back from the benchmark's JSON files."""
    rows = []
    for path in (out / "speed_fp32.json", out / "speed_bf16.json", out / "speed_vit.json"):
        for r in json.loads(path.read_text())["results"] if path.exists() else []:
            line = (f"{r['config']:8s} {'bf16' if r['bf16'] else 'fp32'}  GS-LoRA++ step {r['gs_step_s']:.3f} s "
                    f"({r['gs_img_per_s']:.0f} img/s, peak {r['gs_peak_mb']:.0f} MB)  fine-tuning step "
                    f"{r['ft_step_s']:.3f} s  per-image ratio {per_image_ratio(r):.2f}  evaluation pass "
                    f"{r['eval_s']:.1f} s")
            if "protocol_h" in r:
                line += f"  task 0 {r['task0_h']:.2f} h, Table 3 protocol {r['protocol_h']:.2f} h"
            if "original_graph_gs_step_s" in r:
                line += (f"  vs the original's graph: GS-LoRA++ {r['gs_step_s'] / r['original_graph_gs_step_s']:.2f}x, "
                         f"fine-tuning {r['ft_step_s'] / r['original_graph_ft_step_s']:.2f}x")
            rows.append(line)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--data_root", default="data/faces_webface_112x112_sub100_train_test",
        help="CASIA-100 (train/ and test/ of one folder per class); a per-class subset will do")
    add("--outdir", default="runs/gpu_check",
        help="logs, runs and the summary; an earlier check's folder is emptied first")
    add("--steps", type=int, default=5, help="timed training steps per benchmark")
    add("--workers", type=int, default=8, help="decoding threads and streamed-data processes")
    add("--dry-run", dest="dry_run", action="store_true",
        help="tiny sizes on the CPU: checks that every stage runs, its numbers mean nothing")
    args = parser.parse_args()
    device = torch.device("cpu" if args.dry_run else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("error: no CUDA device is visible to torch; run with --dry-run to check the script on the CPU")
    if not args.dry_run and not (Path(args.data_root) / "train").is_dir():
        sys.exit(f"error: --data_root {args.data_root} has no train/ folder; pass the CASIA-100 folder")
    out = Path(args.outdir)
    if out.is_dir() and any(out.iterdir()) and not (out / "gpu_check.json").exists():
        sys.exit(f"error: --outdir {out} holds files that no earlier check wrote; pass an empty or new folder")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    summary = {"dry_run": args.dry_run, "stages": {}}
    for name, check in stages(args, out, device).items():
        result, took = timed(lambda: attempt(check))
        summary["stages"][name] = {**result, "seconds": round(took, 1)}
        print(f"{name:16s} {'ok' if result['ok'] else 'FAILED'} ({summary['stages'][name]['seconds']} s)"
              f"{'' if result['ok'] else '  ' + result['error']}", flush=True)
    summary["benchmarks"] = benchmark_rows(out)
    print("\n".join(["", "== summary ==", json.dumps(summary["stages"]["environment"]), *summary["benchmarks"]]))
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=2))
    sys.exit(0 if all(s["ok"] for s in summary["stages"].values()) else 1)


if __name__ == "__main__":
    main()
