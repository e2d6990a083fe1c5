"""The GPU check's dry run (every stage at tiny sizes on the CPU) and the benchmark's protocol extrapolation."""
import json
import subprocess
import sys

import pytest
from conftest import ROOT, child_env

sys.path.insert(0, str(ROOT / "benchmarks"))
from speed import protocol_hours  # noqa: E402


def test_protocol_hours_follow_the_original_settings():
    """Step 1 s, evaluation 10 s, prototypes 5 s. Remain images 2,797 x (80, 60, 40, 20) / 80 = 2797, 2098, 1398,
    699 give 59, 44, 30, 15 steps of 48 per epoch; 100 epochs; an evaluation every 100 steps:
    (5900 + 590 + 5) + (4400 + 440 + 5) + (3000 + 300 + 5) + (1500 + 150 + 5) = 16,300 s."""
    result = {"gs_step_s": 1.0, "eval_s": 10.0, "prototypes_s": 5.0}
    assert protocol_hours(result, (80,)) == pytest.approx(6495 / 3600)
    assert protocol_hours(result, (80, 60, 40, 20)) == pytest.approx(16300 / 3600)


def test_gpu_check_dry_run_runs_every_stage(tmp_path):
    out = tmp_path / "check"
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--outdir", str(out),
                           "--workers", "1", "--steps", "1"], cwd=ROOT, env=child_env(), capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((out / "gpu_check.json").read_text())
    assert list(summary["stages"]) == ["environment", "pre-training", "forgetting task", "benchmark fp32",
                                       "benchmark bf16"]
    assert all(stage["ok"] for stage in summary["stages"].values())
    assert len(summary["benchmarks"]) == 2 and "Table 3 protocol" in summary["benchmarks"][0]
    speed = json.loads((out / "speed_fp32.json").read_text())
    assert speed["commit"] and speed["torch"] and speed["results"][0]["protocol_h"] > 0
    assert speed["results"][0]["original_graph_gs_step_s"] > 0  # --side_by_side timed the original's graph
    assert "vs the original's graph" in summary["benchmarks"][0]
    assert json.loads((out / "forget" / "results.json").read_text())["tasks"][0]["optimizer_steps"] == 2


def test_gpu_check_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--outdir", str(tmp_path)],
                          cwd=ROOT, env=child_env(), capture_output=True, text=True)
    assert done.returncode != 0 and "no earlier check wrote" in done.stderr
    assert (tmp_path / "notes.txt").read_text() == "keep me"
