"""ImageNet100 with a torchvision ViT: wnid folders streamed from disk, weights in torchvision's layout, head surgery,
LoRA on torchvision's MLP blocks, a two-task run of GS-LoRA and a baseline, and one step at the real ViT-B/16 size.

The trees are small generated JPEG folders named by real ImageNet100 wnids; the weights are a randomly initialised
torchvision ``VisionTransformer`` at test size, saved as torchvision saves ``vit_b_16-c867db91.pth``.
"""
import copy
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, child_env, run_entry_point, tiny_settings

import config  # noqa: F401  (registers every method)
from backbone.lora import inject_lora, lora_groups, mark_only_lora_trainable
from data import build_data
from data.folders import BatchLoader, ImageTensors
from data.generated_imagenet import tiny_torchvision_vit, write_wnid_tree
from data.imagenet import imagenet_rows
from data.task_plan import plan_tasks
from engine.evaluation import outside_accuracy
from engine.forgetting import run_forgetting
from engine.method import METHODS
from model import build_model, cut_head, load_model_weights, pretrained_weights
from run_setup import outside_classes
from util.errors import UserError
from util.run_log import RunLog

# Six ImageNet100 wnids, in sorted (folder) order, with their ImageNet-1k indices written out by hand:
# electric ray 5, harvestman 70, macaw 88, drake 97, chambered nautilus 117, bittern 133.
WNIDS = ["n01496331", "n01770081", "n01818515", "n01847000", "n01968897", "n02011460"]
ROWS_BY_HAND = [5, 70, 88, 97, 117, 133]


@pytest.fixture(scope="module")
def imagenet_tree(tmp_path_factory) -> Path:
    return write_wnid_tree(tmp_path_factory.mktemp("imagenet100"), WNIDS, {"train": 10, "test": 4})


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    vit = tiny_torchvision_vit()
    path = tmp_path_factory.mktemp("weights") / "vit_tiny_torchvision.pth"
    torch.save(vit.state_dict(), path)
    return vit, path


def test_wnid_rows_are_imagenet_indices():
    assert imagenet_rows(WNIDS) == ROWS_BY_HAND
    assert imagenet_rows(["n01440764", "n15075141"]) == [0, 999]  # tench, toilet tissue: first and last
    with pytest.raises(UserError, match="not ImageNet wnids"):
        imagenet_rows(["n01440764", "cat"])


def test_head_surgery_takes_each_class_row_of_its_wnid(torchvision_file):
    vit, _ = torchvision_file
    state, full = pretrained_weights(vit.state_dict(), WNIDS)
    assert state["head.weight"].shape == (6, 32) and full["weight"].shape == (1000, 32)
    for local, row in enumerate(ROWS_BY_HAND):
        assert torch.equal(state["head.weight"][local], vit.heads.head.weight[row])
        assert torch.equal(state["head.bias"][local], vit.heads.head.bias[row])
    assert torch.equal(full["weight"], vit.heads.head.weight)
    picked = cut_head({"head.weight": torch.arange(10.0).view(5, 2), "head.bias": torch.arange(5.0)}, [4, 0])
    assert picked["head.weight"].tolist() == [[8.0, 9.0], [0.0, 1.0]] and picked["head.bias"].tolist() == [4.0, 0.0]


def test_loaded_model_equals_torchvision(torchvision_file):
    """Embedding = class token after the encoder's final LayerNorm; logits = torchvision's at the classes' rows."""
    vit, _ = torchvision_file
    model = build_model("vit_tv_tiny", "softmax", len(WNIDS))
    load_model_weights(model, pretrained_weights(vit.state_dict(), WNIDS)[0])
    model.eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        tokens = vit._process_input(images)
        tokens = torch.cat([vit.class_token.expand(3, -1, -1), tokens], dim=1)
        expected_emb = vit.encoder(tokens)[:, 0]
        logits, emb = model(images)
        torch.testing.assert_close(emb, expected_emb)
        torch.testing.assert_close(logits, vit(images)[:, ROWS_BY_HAND])
        inject_lora(model.backbone, rank=4)  # LoRA keeps the pre-trained FFN weights: the output is unchanged
        torch.testing.assert_close(model(images)[0], logits)


def test_lora_on_torchvision_mlp_blocks_one_group_per_block():
    model = build_model("vit_tv_tiny", "softmax", 6, depth=3)
    inject_lora(model.backbone, rank=2)
    groups = lora_groups(model.backbone)
    assert [len(g) for g in groups] == [4, 4, 4]
    assert [tuple(p.shape) for p in groups[0]] == [(2, 32), (64, 2), (2, 64), (32, 2)]


def test_streamed_imagenet_batches(imagenet_tree):
    data = build_data(imagenet_tree, 32, val_ratio=0.2, seed=0, workers=0, data_mode="imagenet100")
    assert data.train.classes == WNIDS and len(data.train) == 60 and len(data.test) == 24
    assert len(data.val_idx) == 12  # 2 of 10 per class
    images, labels = next(iter(BatchLoader(data.test, torch.arange(24), 8)))
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32
    assert images.min() < -0.5 and labels.tolist() == [0] * 4 + [1] * 4  # ImageNet-normalised, not [0, 1]
    # The same seeded shuffle as the in-memory loader, and the same pixels with worker processes.
    in_memory = ImageTensors(torch.zeros(60, 3, 1, 1, dtype=torch.uint8), data.train.targets, data.train.classes)
    streamed = [labels for _, labels in BatchLoader(data.train, data.train_idx, 16, shuffle=True, seed=3, tag="t")]
    kept = [labels for _, labels in BatchLoader(in_memory, data.train_idx, 16, shuffle=True, seed=3, tag="t")]
    assert [t.tolist() for t in streamed] == [t.tolist() for t in kept]
    assert torch.cat(streamed).tolist() != sorted(torch.cat(streamed).tolist())  # shuffled
    data.test.workers = 2
    with_workers = next(iter(BatchLoader(data.test, torch.arange(24), 8)))
    assert torch.equal(with_workers[0], images) and torch.equal(with_workers[1], labels)


def test_bad_imagenet_folders_are_one_line(tmp_path):
    bad = write_wnid_tree(tmp_path / "bad", WNIDS[:2] + ["n9goldfish"], {"train": 2, "test": 1})
    with pytest.raises(UserError, match="not ImageNet wnids.*goldfish"):
        build_data(bad, 32, data_mode="imagenet100", workers=0)
    with pytest.raises(UserError, match="not found"):
        build_data(tmp_path / "absent", 32, data_mode="imagenet100", workers=0)
    corrupt = write_wnid_tree(tmp_path / "corrupt", WNIDS[:2], {"train": 2, "test": 2})
    (corrupt / "test" / WNIDS[0] / f"{WNIDS[0]}_1.JPEG").write_bytes(b"not a jpeg")
    data = build_data(corrupt, 32, val_ratio=0.0, data_mode="imagenet100", workers=2)
    with pytest.raises(UserError, match=r"^cannot decode image .*_1\.JPEG \(not an image format") as err:
        list(BatchLoader(data.test, torch.arange(4), 2))  # raised in a worker process, shown as one line
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("method", ["gs_lora", "l2"])
def test_two_task_run_from_torchvision_weights(method, imagenet_tree, torchvision_file, tmp_path):
    """Pre-train the tiny ViT from the torchvision file on the wnid tree, then forget 2 classes twice.

    Pre-training is short on purpose: a saturated model has vanishing forget gradients.
    """
    _, weights = torchvision_file
    common = ["-d", "imagenet100", "--data_root", str(imagenet_tree), "-n", "vit_tv_tiny", "--num_workers", "0",
              "--log_level", "WARNING", "--val_ratio", "0.2", "--no_tensorboard", "-b", "16"]
    pretrained = tmp_path / "pre"
    run_entry_point("train_own.py", *common, "-r", str(weights), "-e", "4", "--lr", "1e-3", "--warmup-epochs", "0",
                    "--outdir", str(pretrained))
    flags = {"gs_lora": ["--lr", "1e-2", "--BND", "15", "--beta", "0.5", "--alpha", "1e-3", "--lora_rank", "4"],
             "l2": ["--lr", "3e-3", "--l2_lambda", "0.01"]}[method]
    outdir = tmp_path / method
    run_entry_point("train_own_forget_cl.py", *common, "-r", str(pretrained / "best.pth"), "-e", "20",
                    "--num_of_first_cls", "4", "--per_forget_cls", "2", "--num_tasks", "2", "--data_ratio", "1",
                    "--warmup-epochs", "0", "--selection", "last", "--method", method, *flags, "--outdir", str(outdir))
    results = json.loads((outdir / "results.json").read_text())
    assert len(results["tasks"]) == 2 and results["config"]["data_mode"] == "imagenet100"
    assert all(np.isfinite(task[k]) for task in results["tasks"] for k in ("acc_f", "acc_r", "acc_f_before"))
    first = results["tasks"][0]
    assert first["acc_f_before"] == 100 and first["acc_f"] <= 50  # the pre-trained model knew them; now forgotten
    if method == "gs_lora":
        assert results["tasks"][1]["acc_f"] < results["tasks"][1]["acc_f_before"]
        assert first["trainable_params"] == 2 * 2 * 4 * (32 + 64)  # blocks x FFN linears x rank x (in + out)
    run_entry_point("test_forget_cl.py", "--run_dir", str(outdir))  # re-evaluation streams the same data


def test_vit_b16_one_gs_lora_step_at_full_size():
    """The real ViT-B/16 (224 px, 12 blocks of width 768): LoRA sizes of the reference and one training step."""
    model = build_model("vit_b16", "cosface", 100)  # the ImageNet model keeps its linear head
    assert type(model.head).__name__ == "LinearHead" and model.backbone.embed_dim == 768
    inject_lora(model.backbone, rank=8)
    mark_only_lora_trainable(model)
    groups = lora_groups(model.backbone)
    assert len(groups) == 12 and sum(p.numel() for g in groups for p in g) == 737_280  # reference Sec. 1.5
    optimizer = torch.optim.AdamW([p for g in groups for p in g], lr=1e-2)
    logits, emb = model(torch.randn(2, 3, 224, 224), torch.tensor([0, 1]))
    assert logits.shape == (2, 100) and emb.shape == (2, 768)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and groups[0][1].abs().sum() > 0  # B of block 0 moved off zero


@pytest.fixture(scope="module")
def outside_tree(tmp_path_factory) -> Path:
    """Three ImageNet-900 stand-in classes (outside WNIDS): tench 0, goldfish 1, toilet tissue 999."""
    return write_wnid_tree(tmp_path_factory.mktemp("imagenet900"), ["n01440764", "n01443537", "n15075141"], {"": 3})


def test_outside_accuracy_scores_global_rows(outside_tree):
    """A full head that always answers toilet tissue (row 999, folder 2) is right on exactly a third of the images."""
    full = {"weight": torch.zeros(1000, 32), "bias": torch.zeros(1000)}
    full["bias"][999] = 100.0
    outside = outside_classes(outside_tree, full, 32, workers=0, weights="w.pth")
    assert outside.rows.tolist() == [0, 1, 999] and len(outside.images) == 9
    model = build_model("vit_tv_tiny", "softmax", len(WNIDS))
    assert outside_accuracy(model, outside, 4, torch.device("cpu")) == pytest.approx(100 / 3)
    with pytest.raises(UserError, match="1000-way ImageNet head"):
        outside_classes(outside_tree, None, 32, workers=0, weights="best.pth")


def test_missing_class_evaluation_in_a_run(imagenet_tree, outside_tree, torchvision_file, tmp_path):
    """Acc_m before the first task and after each is the torchvision model's own 1000-way accuracy on the outside
    images, and re-evaluation from the saved checkpoints agrees. The file's toilet-tissue bias is raised so that
    the accuracy is a third, not the zero of a random head."""
    vit, _ = torchvision_file
    vit = copy.deepcopy(vit)
    with torch.no_grad():
        vit.heads.head.bias[999] += 1000.0
    weights = tmp_path / "vit_biased.pth"
    torch.save(vit.state_dict(), weights)
    outdir = tmp_path / "run"
    run_entry_point("train_own_forget_cl.py", "-d", "imagenet100", "--data_root", str(imagenet_tree), "-n",
                    "vit_tv_tiny", "-r", str(weights), "--imagenet900_root", str(outside_tree), "--num_workers", "0",
                    "--log_level", "WARNING", "--no_tensorboard", "--num_of_first_cls", "4", "--per_forget_cls", "2",
                    "--num_tasks", "2", "--steps_per_task", "2", "-b", "8", "--selection", "last",
                    "--outdir", str(outdir))
    results = json.loads((outdir / "results.json").read_text())
    outside = outside_classes(outside_tree, {"weight": vit.heads.head.weight, "bias": vit.heads.head.bias}, 32, 0, "")
    images, labels = next(iter(BatchLoader(outside.images, torch.arange(9), 9)))
    with torch.no_grad():
        expected = 100.0 * (vit(images).argmax(1) == outside.rows[labels]).float().mean().item()
    assert expected == pytest.approx(100 / 3)
    assert results["pretrained"]["original"][0]["acc_m"] == pytest.approx(expected)
    first, second = results["tasks"]
    assert first["acc_m_before"] == pytest.approx(expected) and second["acc_m_before"] == first["acc_m"]
    assert first["plain"]["acc_m"] == first["acc_m"]
    run_entry_point("test_forget_cl.py", "--run_dir", str(outdir))  # exits non-zero if Acc_m differs


def test_timm_vit_by_name_with_a_local_weight_file(imagenet_tree, tmp_path):
    """-n timm:NAME --pretrained_file: timm's architecture, the file's block weights, LoRA on timm's Mlp per block,
    and a short two-task GS-LoRA run through the entry point."""
    import timm
    reference = timm.create_model("vit_tiny_patch16_224", img_size=32, depth=2)
    weights = tmp_path / "vit_tiny_timm.pth"
    torch.save(reference.state_dict(), weights)
    model = build_model("timm:vit_tiny_patch16_224", "softmax", 6, depth=2, image_size=32, pretrained_file=str(weights))
    assert torch.equal(model.backbone.blocks[1].mlp.fc2.weight, reference.blocks[1].mlp.fc2.weight)
    model.eval()
    images = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model.backbone(images), reference.forward_head(reference.forward_features(images),
                                                                               pre_logits=True))
    torch.testing.assert_close(model.backbone.norm(model.backbone.tokens(images)[:, 0]), model.backbone(images))
    inject_lora(model.backbone, rank=2)
    assert [len(g) for g in lora_groups(model.backbone)] == [4, 4]
    outdir = tmp_path / "run"
    run_entry_point("train_own_forget_cl.py", "-d", "imagenet100", "--data_root", str(imagenet_tree), "-n",
                    "timm:vit_tiny_patch16_224", "--vit_depth", "2", "--image_size", "32", "--pretrained_file",
                    str(weights), "--num_workers", "0", "--log_level", "WARNING", "--no_tensorboard",
                    "--num_of_first_cls", "4", "--per_forget_cls", "2", "--num_tasks", "2", "--steps_per_task", "2",
                    "-b", "8", "--lora_rank", "2", "--outdir", str(outdir))
    results = json.loads((outdir / "results.json").read_text())
    assert results["tasks"][1]["trainable_params"] == 2 * 2 * 2 * (192 + 768)  # blocks x linears x rank x (in+out)
    assert results["config"]["net"] == "timm:vit_tiny_patch16_224"


def test_image_script_smoke_mode(tmp_path):
    """SMOKE=1 scripts/run_cl_forget_image.sh: generated wnid folders, tiny model, 2 steps per task, then the
    table; an unknown method is one line and status 2."""
    env = {**child_env(), "SMOKE": "1", "OUT_ROOT": str(tmp_path)}
    script = str(ROOT / "scripts" / "run_cl_forget_image.sh")
    done = subprocess.run(["bash", script, "gs_lora", "ewc"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "cl_image" / "gs_lora" / "results.json").read_text())
    assert len(results["tasks"]) == 4 and results["tasks"][0]["acc_m"] is not None  # the generated outside folder
    assert "Acc_m" in done.stdout and "ewc" in done.stdout
    refused = subprocess.run(["bash", script, "lirf"], env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "no ImageNet100 values for lirf" in refused.stderr


@pytest.mark.parametrize("method_name", METHODS.names())
def test_every_method_runs_on_streamed_imagenet_with_a_torchvision_vit(method_name, imagenet_tree, torchvision_file,
                                                                       tmp_path):
    """Every registered method, unchanged, on the torchvision backbone and streamed data: two tasks of 2 steps."""
    vit, _ = torchvision_file
    data = build_data(imagenet_tree, 32, val_ratio=0.2, seed=0, workers=0, data_mode="imagenet100")
    torch.manual_seed(0)
    model = build_model("vit_tv_tiny", "softmax", len(WNIDS))
    load_model_weights(model, pretrained_weights(vit.state_dict(), WNIDS)[0])
    settings = tiny_settings(tmp_path, epochs=2, steps_per_task=2, selection="last")
    settings.model_args = dict(net="vit_tv_tiny", head="softmax", num_classes=len(WNIDS))
    results = run_forgetting(METHODS.get(method_name)(model), data, plan_tasks(list(range(6)), 4, 2, 2), settings,
                             RunLog(None))
    assert [t["optimizer_steps"] for t in results["tasks"]] == [2, 2]
    assert all(np.isfinite(t["acc_r"]) and np.isfinite(t["acc_f"]) for t in results["tasks"])
