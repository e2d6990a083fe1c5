"""Speed benchmark against the original implementation's measured figures (reference/original-speed.md).

On real CASIA-100 task-0 batches at 'reduced' (56 px, width 256) and 'full' (112 px, width 512): GS-LoRA++ and full
fine-tuning steps, an evaluation pass and the prototypes, extrapolated to task 0 and Table 3's protocol as the reference
does, as ratios to the original's figures (--side_by_side: to its graph, timed alongside, whatever the machine). 'tiny'
checks the path in seconds; 'vit_b16' times ImageNet100's backbone and its streamed data. See docs/speed.md.

    python benchmarks/speed.py --configs reduced full --steps 5 --json runs/benchmarks/speed.json
    python benchmarks/speed.py --configs full --steps 5 --eval_images 960 --side_by_side
    python benchmarks/speed.py --configs vit_b16 --precision bf16 --steps 5 --num_workers 8 --imagenet_root DIR"""
import argparse
import itertools
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import original_graph  # noqa: E402
from config import parse_args  # noqa: E402
from data.class_order import class_order  # noqa: E402
from data.folders import BatchLoader, ImageTensors, cycle, load_image_folder, subset_indices  # noqa: E402
from data.imagenet import stream_imagenet_split  # noqa: E402
from data.subsets import ratio_subset  # noqa: E402
from data.task_plan import plan_tasks  # noqa: E402
from engine.evaluation import evaluate  # noqa: E402
from engine.method import METHODS, StepInfo, TaskContext  # noqa: E402
from engine.optim import OptimConfig  # noqa: E402
from model import build_model  # noqa: E402
from util.allocator import keep_freed_memory  # noqa: E402
from util.cost import CostMeter  # noqa: E402
from util.device import resolve_device, use_bf16  # noqa: E402

# reference/original-speed.md, re-measured side by side on these 2-core machines with torch 2.14.1 (fp32, 2 threads,
# no loader workers). The full configuration's evaluation pass and task-0 time were only measured with torch 2.13.
ORIGINAL = {"full": {"gs_step_s": 15.22, "ft_step_s": 6.83, "eval_s": 524.0, "prototypes_s": 251.0, "task0_h": 37.8},
            "reduced": {"gs_step_s": 1.184, "ft_step_s": 0.692, "eval_s": 41.5, "prototypes_s": 24.5, "task0_h": 2.62}}
NETS = {"full": "vit_face", "reduced": "vit_face_reduced", "tiny": "vit_face_tiny"}
IMAGENET100_TEST = 5000  # ImageNet100's test images (50 validation images of each of the 100 classes)
REMAIN_IMAGES = 2797  # task 0's remain images in the original's protocol (80 classes, 10 % of CASIA-100's train split)
PROTOCOL_REMAIN_CLASSES = (80, 60, 40, 20)  # Table 3: four tasks of 20 forgotten classes each
EPOCHS, EVAL_EVERY, EVAL_BATCH = 100, 100, 240


def timed(fn: Callable, device: torch.device | None = None) -> tuple[object, float]:
    """``fn()`` and its wall time (s), a CUDA device synchronised before the clock stops: every benchmark's clock."""
    start = time.perf_counter()
    result = fn()
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def step_figures(key: str, method, ctx, loaders, steps: int, device, meter: CostMeter, images: int,
                 reference=None, begin_ctx=None) -> tuple[dict, float]:
    """Median step time after a warm-up, peak memory and images/s under ``key``, and ``begin_task``'s time; the step
    that ``reference()`` makes alternates with ours on the same batches, so a slow moment of the machine is shared."""
    begun = timed(lambda: method.begin_task(begin_ctx or ctx), device)[1]
    method.build_optimizer(ctx)
    steppers = {"ours": lambda remain, forget, i: method.training_step(remain, forget, StepInfo(0, 0, i))}
    if reference:
        original = reference()
        steppers["original"] = lambda remain, forget, i: original(remain, forget)
    times = {name: [] for name in steppers}
    for i, (remain, forget) in zip(range(steps + 1), zip(cycle(loaders[0]), cycle(loaders[1]))):
        remain, forget = ctx.to_device(remain), ctx.to_device(forget)
        for name in sorted(steppers, reverse=bool(i % 2)):
            times[name].append(timed(lambda: steppers[name](remain, forget, i), device)[1])
    step_s = statistics.median(times["ours"][1:])
    out = {f"{key}_step_s": step_s, f"{key}_peak_mb": meter.stop()["peak_memory_mb"],
           f"{key}_img_per_s": images / step_s}
    if reference:
        out[f"original_graph_{key}_step_s"] = statistics.median(times["original"][1:])
    return out, begun


def eval_seconds(model, images: ImageTensors, starts, batch: int, device, amp: bool, total: int) -> float:
    """A pass over ``total`` images from the median batch at ``starts``: a noisy moment moves a batch, not the pass."""
    times = [timed(lambda: evaluate(model, images, torch.arange(s, s + batch), batch, device, amp), device)[1]
             for s in starts]
    return statistics.median(times) * total / batch


def original_graph_like(model) -> original_graph.FaceTransformer:
    """The original's graph at our model's sizes (benchmarks/original_graph.py), on the same device."""
    backbone, block = model.backbone, model.backbone.blocks[0]
    return original_graph.FaceTransformer(
        backbone.image_size, backbone.embed_dim, block.mlp.fc1.out_features, depth=len(backbone.blocks),
        heads=block.attn.heads, dim_head=block.attn.dim_head, patch_size=backbone.patch_size,
        num_classes=model.head.weight.shape[0]).to(next(model.parameters()).device)


def gemm_gflops(device: torch.device, dtype: torch.dtype, size: int = 1024, repeats: int = 20) -> float:
    """Median throughput of a square matrix product, printed beside the results so that a busy machine shows."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    times = [timed(lambda: a @ b, device)[1] for _ in range(repeats + 1)]
    return 2 * size ** 3 / statistics.median(times[1:]) / 1e9


def method_for(name: str, net: str, argv: list, model):
    return METHODS.get(name).from_args(model, parse_args("benchmark", argv=["-n", net, "--method", name] + argv))


def bench(config: str, root: Path, device: torch.device, steps: int, eval_images: int, amp: bool,
          side_by_side: bool = False) -> dict:
    net = NETS[config]
    model = build_model(net, "cosface", 100).to(device)
    train, test = (load_image_folder(root, split, model.backbone.image_size) for split in ("train", "test"))
    task = plan_tasks(class_order(100, 1337), 80, 20, 4)[0]
    remain, forget = (ratio_subset(subset_indices(train, getattr(task, side)), 0.1, 1337, 0, side)
                      for side in ("remain", "forget"))
    ctx = TaskContext(task, train, remain, forget, 48, device, amp, 1337, 100, EPOCHS,
                      OptimConfig(lr=1e-2, epochs=EPOCHS, warmup_epochs=0))
    out = {"config": config, "device": str(device), "bf16": amp, "remain_images": len(remain),
           "forget_images": len(forget), "gemm_gflops_before": gemm_gflops(device, torch.float32)}

    meter = CostMeter(device).start()
    gs = method_for("gs_lora_pp", net, ["--lora_rank", "8", "--BND", "105", "--pro_f_weight", "0.01"], model)
    reference = (lambda: original_graph.gs_lora_pp_step(original_graph_like(model))) if side_by_side else None
    figures, out["prototypes_s"] = step_figures("gs", gs, ctx, (ctx.loader(remain, "r"), ctx.loader(forget, "f")),
                                                steps, device, meter, 96, reference)
    out.update(figures)

    full_model = build_model(net, "cosface", 100).to(device)
    meter.start()
    ft = method_for("l2", net, ["--l2_lambda", "0.1", "--replay"], full_model)
    reference = (lambda: original_graph.fine_tuning_step(original_graph_like(full_model))) if side_by_side else None
    loaders = [BatchLoader(train, side, batch_size=24, shuffle=True, tag=tag)
               for side, tag in ((remain, "r"), (forget, "f"))]
    out.update(step_figures("ft", ft, ctx, loaders, steps, device, meter, 48, reference,
                            begin_ctx=TaskContext(**{**ctx.__dict__, "batch_size": 24}))[0])

    n_eval = min(max(eval_images, EVAL_BATCH), len(test))
    starts = range(0, n_eval - EVAL_BATCH + 1, EVAL_BATCH)
    out["eval_s"] = eval_seconds(gs.model, test, starts, EVAL_BATCH, device, amp, len(test))
    out.update(eval_batches_timed=len(starts), gemm_gflops_after=gemm_gflops(device, torch.float32))
    # task 0 alone, then all four tasks
    out["task0_h"], out["protocol_h"] = (protocol_hours(out, PROTOCOL_REMAIN_CLASSES[:n]) for n in (1, 4))
    return out


def protocol_hours(result: dict, remain_classes) -> float:
    """Hours of tasks with these remain-class counts under the original's settings: 100 epochs of ceil(images / 48)
    steps, an evaluation every 100 steps and the prototypes per task (images: task 0's 2,797 scaled by class)."""
    steps = [EPOCHS * -(-round(REMAIN_IMAGES * classes / 80) // 48) for classes in remain_classes]
    total = sum(n * result["gs_step_s"] + n // EVAL_EVERY * result["eval_s"] + result["prototypes_s"] for n in steps)
    return total / 3600


def loader_images_per_s(train, batch: int, batches: int) -> float:
    """Images/s of the data path alone: decode, resize, crop and normalise in the worker processes."""
    loader = iter(BatchLoader(train, torch.arange(len(train)), batch, shuffle=True, tag="bench"))
    next(loader)  # worker start-up is paid once per pass, not per batch
    count, took = timed(lambda: sum(len(labels) for _, labels in itertools.islice(loader, batches)))
    return count / took


def bench_vit_b16(root, device: torch.device, steps: int, amp: bool, batch: int, workers: int) -> dict:
    """ViT-B/16's GS-LoRA++ and fine-tuning steps on random images, its evaluation pass and the streamed data path
    (ImageNet100's training split at 224 px; generated 500 x 375 JPEGs of 4 wnids when ``root`` is None)."""
    if root is None:
        import tempfile

        from data.generated_imagenet import spread_wnids, write_wnid_tree
        root = Path(tempfile.mkdtemp(prefix="imagenet_bench_"))
        write_wnid_tree(root, spread_wnids(4), {"train": 96, "test": 1}, size=(500, 375))
    train = stream_imagenet_split(Path(root), "train", 224, workers)
    out = {"config": "vit_b16", "device": str(device), "bf16": amp, "batch": batch, "workers": workers,
           "loader_img_per_s": loader_images_per_s(train, batch, max(1, min(8, len(train) // batch - 1)))}
    task = plan_tasks(list(range(100)), 80, 20, 4)[0]
    labels = torch.cat([torch.arange(batch) % 80, 80 + torch.arange(batch) % 20])
    images = ImageTensors(torch.randint(0, 256, (2 * batch, 3, 224, 224), dtype=torch.uint8), labels,
                          [str(c) for c in range(100)])
    remain, forget = torch.arange(batch), torch.arange(batch, 2 * batch)
    meter = CostMeter(device)
    for key, name, flags, side in (("gs", "gs_lora_pp", ["--lora_rank", "8", "--BND", "105", "--pro_f_weight", "0.05"],
                                    batch), ("ft", "l2", ["--l2_lambda", "0.05", "--replay"], batch // 2)):
        ctx = TaskContext(task, images, remain, forget, side, device, amp, 1337, 100, EPOCHS,
                          OptimConfig(lr=1e-2, epochs=EPOCHS, warmup_epochs=0))
        method = method_for(name, "vit_b16", flags, build_model("vit_b16", "softmax", 100).to(device))
        meter.start()  # the peak includes begin_task (GS-LoRA++: fresh LoRA and prototypes of the remain images)
        out.update(step_figures(key, method, ctx, (ctx.loader(remain, "r"), ctx.loader(forget, "f")), steps, device,
                                meter, 2 * side)[0])
    eval_batch = min(EVAL_BATCH, 5 * batch)  # the engine's default test batch is 5 x --batch_size
    test = ImageTensors(torch.zeros(eval_batch, 3, 224, 224, dtype=torch.uint8), torch.arange(eval_batch) % 100,
                        [str(c) for c in range(100)])
    out["eval_s"] = eval_seconds(method.model, test, [0, 0, 0], eval_batch, device, amp, IMAGENET100_TEST)
    return out


def per_image_ratio(result: dict) -> float:
    """A GS-LoRA++ step's time per image over a full fine-tuning step's (2 x batch against batch images)."""
    side = result.get("batch", 48)
    return (result["gs_step_s"] / (2 * side)) / (result["ft_step_s"] / side)


def report_vit_b16(result: dict) -> None:
    print(f"\n== vit_b16 (224 px) on {result['device']} (bf16 {result['bf16']}) ==")
    for key, label, count in (("gs", "GS-LoRA++ step", 2 * result["batch"]),
                              ("ft", "full fine-tuning step", result["batch"])):
        print(f"{label} ({count} images): {result[f'{key}_step_s']:.3f} s, {result[f'{key}_img_per_s']:.1f} img/s, "
              f"peak {result[f'{key}_peak_mb']:.0f} MB")
    print(f"GS-LoRA step / full fine-tuning step, per image: {per_image_ratio(result):.2f}")
    print(f"evaluation pass, {IMAGENET100_TEST:,} test images: {result['eval_s']:.1f} s")
    print(f"data path ({result['workers']} workers): {result['loader_img_per_s']:.1f} img/s "
          f"({result['loader_img_per_s'] / result['gs_img_per_s']:.2f}x the GS-LoRA step's images/s; below 1 the "
          f"loader starves the device: raise --num_workers)")


def report(result: dict) -> None:
    if result["config"] == "vit_b16":
        return report_vit_b16(result)
    ref = ORIGINAL.get(result["config"], {})
    print(f"\n== {result['config']} configuration on {result['device']} (bf16 {result['bf16']}) ==")
    print(f"{'':38s}{'ours':>10s}{'original':>10s}{'ours/orig':>11s}")
    for label, key in (("GS-LoRA++ step (96 images)", "gs_step_s"), ("full fine-tuning step (48 images)", "ft_step_s"),
                       ("evaluation pass, 8,984 images", "eval_s"), ("prototypes", "prototypes_s"),
                       ("task 0, original settings", "task0_h"), ("4-task protocol (Table 3)", "protocol_h")):
        unit = key[-1]  # every key ends in its unit, s or h
        print(f"{label:38s}{result[key]:9.3f}{unit}" + (f"{ref[key]:9.3f}{unit}{result[key] / ref[key]:10.2f}x"
                                                        if key in ref else ""))
    print(f"GS-LoRA step / full fine-tuning step, per image: {per_image_ratio(result):.2f} (original 0.86-1.11, "
          f"target <= 0.80)")
    if "original_graph_gs_step_s" in result:
        graph_gs, graph_ft = result["original_graph_gs_step_s"], result["original_graph_ft_step_s"]
        print(f"side by side with the original's graph (benchmarks/original_graph.py), same batches, alternating: "
              f"GS-LoRA++ step {result['gs_step_s']:.3f} s vs {graph_gs:.3f} s ({result['gs_step_s'] / graph_gs:.2f}x)"
              f", fine-tuning step {result['ft_step_s']:.3f} s vs {graph_ft:.3f} s "
              f"({result['ft_step_s'] / graph_ft:.2f}x); its per-image ratio {(graph_gs / 96) / (graph_ft / 48):.2f}")
    print(f"machine: fp32 1024^3 matrix product {result['gemm_gflops_before']:.0f} GFLOP/s before, "
          f"{result['gemm_gflops_after']:.0f} after (lower on a busy machine)")
    print(f"throughput: GS-LoRA {result['gs_img_per_s']:.1f} img/s, full fine-tuning {result['ft_img_per_s']:.1f} "
          f"img/s; peak memory {result['gs_peak_mb']:.0f} / {result['ft_peak_mb']:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--data_root", default="../shared/data/faces_webface_112x112_sub100_train_test")
    add("--configs", nargs="+", default=["reduced"], choices=sorted(NETS) + ["vit_b16"])
    add("--batch", type=int, default=48, help="vit_b16: images per remain/forget side of a step")
    add("--num_workers", type=int, default=8, help="vit_b16: processes of the streamed data path")
    add("--imagenet_root", help="vit_b16: ImageNet100 folder for the data path (default: generated 500 x 375 JPEGs)")
    add("--steps", type=int, default=5, help="timed steps per measurement (after one warm-up)")
    add("--side_by_side", action="store_true", help="reduced/full/tiny: time the original's graph "
        "(benchmarks/original_graph.py) on the same batches, alternating step by step with ours; it runs in fp32 as "
        "the original does, and peak memory then counts both models")
    add("--eval_images", type=int, default=8984, help="time the batches of this many test images")
    add("--device", default="auto")
    add("--precision", default="auto", choices=["auto", "fp32", "bf16"],
        help="auto: bf16 on CUDA, fp32 on the CPU (as the original's CPU figures)")
    add("--json", default="runs/benchmarks/speed.json", help="where the figures are written as well, with the commit, "
        "torch and the machine")
    args = parser.parse_args()
    keep_freed_memory()
    device = resolve_device(args.device)
    results, made_by, amp = [], provenance(args), use_bf16(args.precision, device)
    for config in args.configs:
        results.append(bench_vit_b16(args.imagenet_root, device, args.steps, amp, args.batch, args.num_workers)
                       if config == "vit_b16" else bench(config, Path(args.data_root), device, args.steps,
                                                         args.eval_images, amp, args.side_by_side))
        report(results[-1])
        # Rewritten after every configuration, so a run cut short keeps what it measured.
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({**made_by, "results": results}, indent=2))


def provenance(args) -> dict:
    """What a figure came from: the command, the commit ('+dirty' for uncommitted changes), torch, the machine."""
    def git(*cmd):
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain", "--untracked-files=no")
                                                   else "")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_name()
    return {"command": " ".join(sys.argv), "commit": commit, "torch": torch.__version__, "device_name": device,
            "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "args": vars(args)}


def cpu_name() -> str:
    """The CPU model as Linux names it ('Intel(R) Xeon(R) ...'); elsewhere what the platform module knows."""
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()



if __name__ == "__main__":
    main()
