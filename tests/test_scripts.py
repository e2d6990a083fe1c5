"""The shell scripts: they parse, the CPU settings name flags for exactly the registered methods, and every paper
section runs end to end in smoke mode (SMOKE=1: synthetic faces, the tiny model, two steps per task), writing its
runs, a table whose H cells all check out, and its plots. Together the sections run every registered method, so a
broken flag, preset or path fails here.

The sections run concurrently (after the shared tiny pre-training and its test), so the whole smoke check takes
about as long as its longest section. Only Table 3's full-data section re-evaluates its runs from their checkpoints
(REEVALUATE=0 elsewhere): the step is the same in every section and costs a data load.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

import baselines  # noqa: F401  (registers the baselines)
import gs_lora  # noqa: F401  (registers GS-LoRA and GS-LoRA++)
from engine.method import METHODS

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))

# section name: (script and arguments, output folder under OUT_ROOT). The method lists are short to keep the
# suite fast; their union is every registered method (checked below).
SECTIONS = {
    "table2_full": (["run_forget.sh", "full", "gs_lora_pp", "fdr"], "single_step/full"),
    "table2_few_shot": (["run_forget.sh", "few_shot", "gs_lora", "scrub"], "single_step/few_shot"),
    "table3_full": (["run_cl_forget.sh", "full", "ewc", "lwf", "der"], "cl/full"),
    "table3_few_shot": (["run_cl_forget.sh", "few_shot", "gs_lora_pp", "der_pp"], "cl/few_shot"),
    "table5": (["run_cl_forget_open.sh", "gs_lora", "lirf", "scrub_s"], "cl_open"),
    "single_step_open": (["run_forget_open.sh", "l2", "mas", "retrain"], "single_step_open"),
}
# compare.sh's last step (cpu_settings.sh's run_methods) on the smoke checkpoint, with small audits: the runs, the
# true oracle of their plan (train_oracle.py: four pre-trainings with the smoke recipe), a table, three plots and the
# audit table against the oracle.
RUN_METHODS = ("source scripts/cpu_settings.sh && FORGET=(-d synthetic -r \"$CKPT\" --num_of_first_cls 80 "
               "--per_forget_cls 20 --num_tasks 4 --steps_per_task 2 --eval_every 1000) && "
               "AUDIT=(--audit --audit_k 1 --audit_steps 1 --audit_images 2) && run_methods \"$OUT_ROOT/compare\" ")
COMPARE = RUN_METHODS + "gs_lora"


def smoke_env(out_root: Path) -> dict:
    # FORGET_COUNTS: one single-step setting of Table 2's four (the loop is the same for all).
    return {**os.environ, "SMOKE": "1", "OUT_ROOT": str(out_root), "CKPT": str(out_root / "pretrain" / "best.pth"),
            "FORGET_COUNTS": "10", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Pre-trains and tests the tiny model, then runs every section at once; returns (OUT_ROOT, {name: result})."""
    out_root = tmp_path_factory.mktemp("smoke")
    env = smoke_env(out_root)
    done = {}
    for name, script in (("pretrain", "run_sub.sh"), ("pretrain_test", "test_sub.sh")):
        done[name] = subprocess.run(["bash", f"scripts/{script}"], cwd=ROOT, env=env, capture_output=True, text=True)
    if done["pretrain"].returncode:
        return out_root, done
    commands = {name: ["bash", f"scripts/{args[0]}", *args[1:]] for name, (args, _) in SECTIONS.items()}
    commands["compare"] = ["bash", "-c", COMPARE]
    commands["ablation"] = ["bash", "scripts/ablation.sh", "--", "--seed", "3"]  # flags after -- reach every run
    running = {name: subprocess.Popen(command, cwd=ROOT, env={**env, "REEVALUATE": str(int(name == "table3_full"))},
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for name, command in commands.items()}
    for name, process in running.items():
        output, _ = process.communicate()
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, output, "")
    return out_root, done


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses(script):
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_cpu_settings_read_every_method_and_its_cpu_flags():
    command = ("source scripts/cpu_settings.sh && for m in \"${ALL_METHODS[@]}\"; do "
               "echo \"$m ${METHOD_FLAGS[$m]}\"; done")
    lines = subprocess.run(["bash", "-c", command], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    flags = dict(line.split(" ", 1) for line in lines.strip().splitlines())
    assert sorted(flags) == METHODS.names()
    assert all(flags[name] == METHODS.get(name).presets["cpu"] for name in flags)


def test_smoke_sections_cover_every_method():
    covered = {m for args, _ in SECTIONS.values() for m in args[1:] if m not in ("full", "few_shot")}
    assert covered == set(METHODS.names())


def test_pretraining_and_its_test_run_in_smoke_mode(smoke):
    out_root, done = smoke
    for name in ("pretrain", "pretrain_test"):
        assert done[name].returncode == 0, done[name].stderr[-3000:]
    assert (out_root / "pretrain" / "best.pth").is_file()
    assert (out_root / "pretrain" / "best_test_accuracy.json").is_file()


@pytest.mark.parametrize("section", SECTIONS)
def test_section_runs_in_smoke_mode_and_writes_its_table_and_plots(smoke, section):
    out_root, done = smoke
    assert done[section].returncode == 0, done[section].stdout[-4000:]
    args, folder = SECTIONS[section]
    out = out_root / folder
    methods = [m for m in args[1:] if m not in ("full", "few_shot")]
    runs = sorted(p.parent.name for p in out.glob("*/results.json"))
    expected = [f"{m}_100-10" for m in methods] if args[0] == "run_forget.sh" else methods
    assert runs == sorted(expected)
    table = (out / "table.md").read_text()
    assert table.count("\n| ") == 1 + len(methods)  # the Pre-train row and one row per method
    assert "H printed" not in table  # the engine's H agrees with the table maker's recomputation
    plots = ["accuracy.png", "cost.png"] + (["group_norms.png"] if any("gs_lora" in m for m in methods) else [])
    assert all((out / p).stat().st_size > 10_000 for p in plots)


def test_compare_ends_with_a_table_three_plots_and_audits_against_the_true_oracle(smoke):
    out_root, done = smoke
    assert done["compare"].returncode == 0, done["compare"].stdout[-4000:]
    table = done["compare"].stdout.split("wrote")[0]
    assert "| GS-LoRA |" in table and "| Oracle |" in table
    for name in ("table.md", "table.csv", "group_norms.png", "accuracy.png", "cost.png", "audit.md", "audit.csv"):
        assert (out_root / "compare" / name).is_file(), name
    oracle = json.loads((out_root / "compare" / "oracle" / "results.json").read_text())
    run = json.loads((out_root / "compare" / "gs_lora" / "results.json").read_text())
    assert oracle["method"] == "oracle" and oracle["plan"] == run["plan"] and len(oracle["tasks"]) == 4
    audit = (out_root / "compare" / "audit.md").read_text()
    assert "kNN Acc_f gap" in audit and "within 5 points of the oracle" in audit
    # Every GS-LoRA task was audited against the oracle: the gaps are its numbers minus the oracle's.
    for task in run["tasks"]:
        gap, ours, theirs = task["audit"]["gap"], task["audit"]["probe"], task["audit"]["oracle"]["probe"]
        assert gap["knn_acc_f"] == pytest.approx(ours["acc_f"] - theirs["acc_f"])


def test_the_ablation_runs_each_lora_position_and_grouping_and_tables_them(smoke):
    out_root, done = smoke
    assert done["ablation"].returncode == 0, done["ablation"].stdout[-4000:]
    out = out_root / "ablation"
    depth = 2  # vit_face_tiny
    # Groups per task: per block; per LoRA layer (fc1, fc2); per matrix (2 x A, B); the qkv's one layer per block.
    groups = {"ffn_block": depth, "ffn_lora": 2 * depth, "ffn_matrix": 4 * depth, "attention_block": depth,
              "attention_matrix": 2 * depth}
    for variant, count in groups.items():
        results = json.loads((out / variant / "results.json").read_text())
        position, grouping = variant.split("_")
        assert (results["config"]["lora_pos"].lower(), results["config"]["grouping"]) == (position, grouping)
        assert results["config"]["seed"] == 3
        assert [len(t["group_norms"]) for t in results["tasks"]] == [count] * 4, variant
    table = (out / "table.md").read_text()
    assert all(f"| GS-LoRA ({variant}) |" in table for variant in groups), table


def test_an_unknown_section_or_method_is_one_error_line(tmp_path):
    env = smoke_env(tmp_path)
    for args in (["run_cl_forget.sh", "sideways"], ["run_forget_open.sh", "der"], ["ablation.sh", "ffn_block", "mlp"]):
        done = subprocess.run(["bash", f"scripts/{args[0]}", *args[1:]], cwd=ROOT, env=env, capture_output=True,
                              text=True)
        assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith(("unknown", "run_forget_open"))


def test_every_method_name_is_checked_before_any_run_starts(tmp_path):
    done = subprocess.run(["bash", "-c", RUN_METHODS + "gs_lora nosuch"], cwd=ROOT, env=smoke_env(tmp_path),
                          capture_output=True, text=True)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("unknown method 'nosuch'; choose from:")
    assert not (tmp_path / "compare").exists()


def plain_env(**values) -> dict:
    """The environment of a script run outside smoke mode, with ``values`` set (SMOKE and paths unset first)."""
    env = {k: v for k, v in os.environ.items() if k not in ("SMOKE", "CKPT", "DATA_ROOT", "OUT_ROOT", "CACHE_DIR")}
    return {**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **values}


@pytest.mark.parametrize("args, refusal", [
    (["run_forget.sh", "full", "gs_lora", "nosuch"], "unknown method 'nosuch'; choose from:"),
    (["run_cl_forget.sh", "full", "gs_lora", "nosuch"], "unknown method 'nosuch'; choose from:"),
    (["run_cl_forget_open.sh", "gs_lora", "nosuch"], "unknown method 'nosuch'; choose from:"),
    (["run_forget_open.sh", "gs_lora", "nosuch"], "run_forget_open.sh has no values for 'nosuch'"),
    (["run_cl_forget_image.sh", "gs_lora", "nosuch"], "unknown method 'nosuch'; choose from:"),
], ids=lambda a: a[0] if isinstance(a, list) else "")
def test_paper_scripts_check_every_method_name_before_any_run(tmp_path, args, refusal):
    """gs_lora would run (here: fail on the missing data) before 'nosuch' was refused."""
    (tmp_path / "ckpt.pth").write_bytes(b"never read")
    env = plain_env(CKPT=str(tmp_path / "ckpt.pth"), DATA_ROOT=str(tmp_path / "no_data"),
                    OUT_ROOT=str(tmp_path / "out"))
    done = subprocess.run(["bash", f"scripts/{args[0]}", *args[1:]], cwd=ROOT, env=env, capture_output=True, text=True)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith(refusal), done.stderr[-2000:]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("variable, value, shown", [("CKPT", "rel/model.pth", "rel/model.pth"),
                                                     ("OUT_ROOT", "rel_out", "rel_out/pretrain/best.pth")])
def test_relative_paths_are_the_callers(tmp_path, variable, value, shown):
    """A relative CKPT or OUT_ROOT names a path under the folder the script is called from, not the repository."""
    done = subprocess.run(["bash", str(ROOT / "scripts" / "run_cl_forget.sh"), "full", "gs_lora"], cwd=tmp_path,
                          env=plain_env(**{variable: value}), capture_output=True, text=True)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith(f"no checkpoint at {tmp_path / shown}:"), done.stderr


def test_smoke_mode_does_not_replace_a_named_checkpoint_that_is_missing(tmp_path):
    """With SMOKE=1 a missing default checkpoint is pre-trained; a missing one that CKPT names is an error (a fresh
    model used in its place would give other numbers silently)."""
    done = subprocess.run(["bash", str(ROOT / "scripts" / "run_cl_forget.sh"), "full", "gs_lora"], cwd=tmp_path,
                          env=plain_env(SMOKE="1", CKPT="rel/model.pth"), capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"no checkpoint at {tmp_path / 'rel' / 'model.pth'}: run scripts/run_sub.sh or set CKPT"], done.stderr
    assert list(tmp_path.iterdir()) == []
