"""The sweep (scripts/sweep.py): the bound H*, command-line editing, the points of a sweep, its
table and lines, and a 2-point sweep on a tiny image folder that a second call skips."""
import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import NUM_CLASSES, ROOT, tiny_settings
from PIL import Image

from engine.pretraining import pretrain
from model import build_model
from scripts import sweep
from util.errors import UserError
from util.run_log import RunLog

DESTS = {"--lr": "lr", "-e": "epochs", "--epochs": "epochs", "--BND": "BND", "--beta": "beta",
         "--cl_beta_list": "cl_beta_list", "--num_tasks": "num_tasks", "--warmup_alpha": "warmup_alpha",
         "--opt-betas": "opt_betas", "--steps_per_task": "steps_per_task"}
SWITCHES = {"warmup_alpha"}
OVERRIDDEN_BY = {"beta": "cl_beta_list"}


def test_bound_is_the_h_of_a_perfect_step():
    # Worked out by hand: 2 * 68 * 71 / (68 + 71) = 9656 / 139 = 69.4676...
    assert sweep.h_bound(68.0, 71.0) == pytest.approx(69.467626, abs=1e-6)
    # Unequal inputs in the other order give the same value (a harmonic mean), and 2*30*90/120 = 45.
    assert sweep.h_bound(90.0, 30.0) == pytest.approx(45.0)
    assert sweep.h_bound(None, 71.0) is None and sweep.h_bound(0.0, 0.0) == 0.0


def test_options_are_edited_by_destination():
    options = sweep.split_options("--lr 1e-2 -e 5 --opt-betas 0.9 -0.5 --BND 30".split(), DESTS)
    assert options == [("--lr", ["1e-2"]), ("-e", ["5"]), ("--opt-betas", ["0.9", "-0.5"]), ("--BND", ["30"])]
    # --epochs replaces -e in place (one destination, two spellings); a new flag is appended.
    edited = sweep.set_option(options, "--epochs", ["3"], DESTS)
    assert edited[1] == ("--epochs", ["3"]) and len(edited) == 4
    assert sweep.set_option(options, "--beta", ["0.1"], DESTS)[-1] == ("--beta", ["0.1"])
    assert ("--BND", ["30"]) not in sweep.set_option(options, "--BND", None, DESTS)
    with pytest.raises(UserError, match="unknown flag --nope"):
        sweep.split_options(["--nope", "1"], DESTS)
    with pytest.raises(UserError, match="starts with the value"):
        sweep.split_options(["5", "--lr", "1"], DESTS)


def test_point_command_lines():
    base = sweep.split_options("--num_tasks 4 --lr 1e-2 --cl_beta_list 0.2 0.3 0.4 0.5 --BND 30".split(), DESTS)
    first = sweep.trim_task_lists(base, 1, DESTS, ["cl_beta_list"])
    assert first == [("--num_tasks", ["1"]), ("--lr", ["1e-2"]), ("--cl_beta_list", ["0.2"]), ("--BND", ["30"])]
    # Setting beta drops the per-task list that would override it; a switch is added with 'on'.
    argv = sweep.point_argv(first, sweep.Point({"beta": "0.05", "warmup_alpha": "on"}), DESTS, SWITCHES,
                            OVERRIDDEN_BY)
    assert argv == "--num_tasks 1 --lr 1e-2 --BND 30 --beta 0.05 --warmup_alpha".split()
    # A value with spaces is a list; flags moved together are both set.
    argv = sweep.point_argv(first, sweep.Point({"cl_beta_list": "0.1 0.2", "e": "3", "steps_per_task": "162"}),
                            DESTS, SWITCHES, OVERRIDDEN_BY)
    assert argv == "--num_tasks 1 --lr 1e-2 --cl_beta_list 0.1 0.2 --BND 30 -e 3 --steps_per_task 162".split()
    with pytest.raises(UserError, match="unknown flag 'bnd'"):
        sweep.point_argv(first, sweep.Point({"bnd": "3"}), DESTS, SWITCHES, OVERRIDDEN_BY)
    with pytest.raises(UserError, match="on or off"):
        sweep.point_argv(first, sweep.Point({"warmup_alpha": "yes"}), DESTS, SWITCHES, OVERRIDDEN_BY)


def test_base_is_set_over_the_preset():
    preset = sweep.split_options("--lr 1e-2 --BND 30 --cl_beta_list 0.2 0.2".split(), DESTS)
    base = sweep.split_options("-e 5 --BND 10 --beta 0.1".split(), DESTS)
    merged = sweep.merge_options(preset, base, DESTS, OVERRIDDEN_BY)
    # BND replaced in place, the per-task list dropped for --beta, new flags appended in order.
    assert merged == [("--lr", ["1e-2"]), ("--BND", ["10"]), ("-e", ["5"]), ("--beta", ["0.1"])]


def test_vary_and_points():
    assert sweep.parse_vary("BND=10,20") == (["BND"], [["10"], ["20"]])
    assert sweep.parse_vary("e:steps_per_task=3:162,5:270") == (["e", "steps_per_task"], [["3", "162"], ["5", "270"]])
    for bad in ("BND", "BND=", "=1", "e:steps_per_task=3"):
        with pytest.raises(UserError):
            sweep.parse_vary(bad)
    varies = [sweep.parse_vary("BND=10,20"), sweep.parse_vary("lr=1e-3,1e-2,3e-2")]
    one_at_a_time = sweep.plan_points(varies, grid=False)
    assert [p.assignment for p in one_at_a_time] == [{}, {"BND": "10"}, {"BND": "20"}, {"lr": "1e-3"}, {"lr": "1e-2"},
                                                      {"lr": "3e-2"}]
    assert one_at_a_time[0].groups == ["BND", "lr"] and one_at_a_time[4].groups == ["lr"]
    grid = sweep.plan_points(varies, grid=True)
    assert len(grid) == 6 and {"BND": "20", "lr": "3e-2"} in [p.assignment for p in grid]
    # Points whose flags resolve alike share the first one's folder.
    assert sweep.point_folders(one_at_a_time[:3], ["a", "b", "a"]) == ["base", "BND=10", "base"]
    assert sweep.folder_name({"cl_beta_list": "0.1 0.2", "x": "a/b"}) == "cl_beta_list=0.1-0.2_x=a_b"


def summary(h, acc_r, acc_f, before_r, before_f):
    return {"h_mean": h, "acc_r": acc_r, "acc_f": acc_f, "acc_r_before": before_r, "acc_f_before": before_f,
            "bound": sweep.h_bound(before_r, before_f)}


def test_table_and_lines():
    def measured(folder, groups, bnd, lr, h):
        task = {"val": summary(h + 1, 60.0, 1.0, 66.0, 70.0), "test": summary(h, 61.0, 2.0, 68.0, 71.0)}
        return sweep.Measured(folder, groups, {"BND": bnd, "lr": lr}, [task], ["100-20"], 270, 20.4)

    points = [measured("base", ["BND", "lr"], "30", "0.01", 65.0), measured("BND=5", ["BND"], "5", "0.01", 67.0),
              measured("lr=0.02", ["lr"], "30", "0.02", 64.0), measured("BND=100", ["BND"], "100", "0.01", 60.0)]
    rows = sweep.table_rows(points, ["BND", "lr"])
    assert rows[0][:4] == ["varied", "BND", "lr", "run"]
    assert rows[0][4:12] == ["100-20 H", "100-20 Acc_r", "100-20 Acc_f", "100-20 H*", "100-20 val H",
                             "100-20 val Acc_r", "100-20 val Acc_f", "100-20 val H*"]
    # BND's rows in numeric order (5 < 30 < 100, not text order), the base in both groups.
    assert [r[3] for r in rows[1:]] == ["BND=5", "base", "BND=100", "base", "lr=0.02"]
    assert rows[1][4:8] == ["67.00", "61.00", "2.00", "69.47"] and rows[1][-2:] == ["270", "20"]
    lines = sweep.curves(points, "BND", "BND")
    assert list(lines) == ["task 100-20"] and [v for v, _ in lines["task 100-20"]] == ["5", "30", "100"]


def test_a_folder_of_other_flags_is_refused(tmp_path):
    sweep.claim_folder(tmp_path / "p", ["--lr", "1", "-e", "2"], {"lr": 1.0, "epochs": 2})
    sweep.claim_folder(tmp_path / "p", ["-e", "2", "--lr", "1.0"], {"lr": 1.0, "epochs": 2})  # the same flags
    with pytest.raises(UserError, match=r"holds a run of other flags \(--lr 1.0 -> 2.0\)"):
        sweep.claim_folder(tmp_path / "p", ["--lr", "2"], {"lr": 2.0, "epochs": 2})


def load_sweep_script():
    spec = importlib.util.spec_from_file_location("sweep_script", ROOT / "scripts" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_setting(tiny_data, tmp_path_factory) -> Path:
    """The fixtures' tiny images as a PNG folder tree and a softmax model pre-trained on them (in-process, so the
    smoke test spends its seconds on the sweep; a saturated CosFace model would barely forget in a few steps)."""
    root = tmp_path_factory.mktemp("tiny_setting")
    for split, images in (("train", tiny_data.train), ("test", tiny_data.test)):
        for k, (image, label) in enumerate(zip(images.images, images.targets.tolist())):
            folder = root / "data" / split / f"c{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{k}.png")
    torch.manual_seed(0)
    model = build_model("vit_face_tiny", "softmax", NUM_CLASSES)
    settings = replace(tiny_settings(root, epochs=8, lr=3e-3), model_args=dict(
        net="vit_face_tiny", head="softmax", num_classes=NUM_CLASSES, image_size=16))
    pretrain(model, tiny_data, settings, RunLog(None), root / "pre.pth")
    return root


def test_a_sweep_without_pretrained_model_is_refused_before_writing(tmp_path):
    script = load_sweep_script()
    with pytest.raises(UserError, match="never pre-trains"):
        script.main(["--base", "-d synthetic --num_tasks 1", "--vary", "BND=5", "--out", str(tmp_path / "s")])
    with pytest.raises(UserError, match="unknown flag --nope"):
        script.main(["--base", "--nope 1", "--out", str(tmp_path / "s")])
    assert not (tmp_path / "s").exists()


def test_two_point_sweep_writes_table_and_plot_and_skips_finished_points(tiny_setting, tmp_path):
    base = (f"-d imagefolder --data_root {tiny_setting / 'data'} --val_ratio 0.25 --num_workers 1 "
            f"-r {tiny_setting / 'pre.pth'} --num_of_first_cls 6 --per_forget_cls 2 --num_tasks 2 -e 8 "
            f"--steps_per_task 40 -b 8 --data_ratio 1 --eval_every 10 --lora_rank 2 --alpha 1e-3 --BND 15 "
            f"--cl_beta_list 1 1 --lr 2e-2 --log_level WARNING")
    argv = ["--base", base, "--method", "gs_lora", "--num_tasks", "1", "--vary", "BND=5", "--out",
            str(tmp_path / "sweep"), "--jobs", "2", "--log_level", "WARNING"]
    script = load_sweep_script()
    ran = script.main(argv)
    out = tmp_path / "sweep"
    assert sorted(Path(p).name for p in ran) == ["BND=5", "base"]
    rows = (out / "sweep.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("varied,BND,run,8-2 H,8-2 Acc_r,8-2 Acc_f,8-2 H*,8-2 val H")
    assert (out / "sweep.md").is_file() and (out / "sweep_BND.png").stat().st_size > 10_000
    for point in ("base", "BND=5"):
        results = json.loads((out / point / "results.json").read_text())
        assert len(results["tasks"]) == 1 and results["config"]["BND"] == (5.0 if point == "BND=5" else 15.0)
        # The validation H recomputed from the saved weights is the H the run's selection recorded.
        val = json.loads((out / point / "val_metrics.json").read_text())["tasks"][0]
        assert val["h_mean"] == pytest.approx(results["tasks"][0]["selection"]["h_mean"], abs=1e-6)
    stamps = {p: (out / p / "results.json").stat().st_mtime_ns for p in ("base", "BND=5")}
    assert script.main(argv) == []  # the second call runs nothing
    assert stamps == {p: (out / p / "results.json").stat().st_mtime_ns for p in ("base", "BND=5")}
    assert len((out / "sweep.csv").read_text().splitlines()) == 3
