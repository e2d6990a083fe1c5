"""The audits end to end on the tiny fixtures: a one-task run with --audit stores every audit number in range, a
GS-LoRA run audited against a Retrain oracle reports the oracle's numbers and the relearn gap, the audit of a
finished run from its checkpoint equals the one made during training, the --audit flags become the run's audit
settings, and bad audit input is one error line."""
import copy
import json

import pytest
import torch
from conftest import NUM_CLASSES, tiny_settings, tiny_tasks

from audit.finished import audit_finished_run
from audit.oracle import check_oracle, oracle_audit
from audit.settings import AuditSettings
from config import parse_args, parse_eval_args
from engine.forgetting import run_forgetting
from engine.method import METHODS
from model import build_model
from run_setup import settings_from_args
from util.errors import UserError
from util.run_log import RunLog

AUDIT = dict(ks=(1, 3), steps=3, images=6, batch=8)


def run_one_task(method_name, pretrained_state, tiny_data, outdir, oracle=None, **method_kw):
    model = build_model("vit_face_tiny", "cosface", NUM_CLASSES)
    model.load_state_dict(copy.deepcopy(pretrained_state))
    settings = tiny_settings(outdir, audit=AuditSettings(**AUDIT, oracle=oracle))
    method = METHODS.get(method_name)(model, **method_kw)
    return run_forgetting(method, tiny_data, tiny_tasks(1), settings, RunLog(None)), settings


def percent(value) -> bool:
    return value is not None and 0.0 <= value <= 100.0


def check_ranges(audit):
    membership = audit["membership"]
    assert percent(membership["classifier"]["member_rate"]) and percent(membership["loss_threshold"]["member_rate"])
    assert percent(audit["probe"]["acc_f"]) and percent(audit["probe"]["acc_r"])
    for group in ("forget", "retain"):
        result = audit["verification"][group]
        assert result["tar"] is None or percent(result["tar"])
        assert result["genuine_pairs"] > 0 and result["impostor_pairs"] > 0
    assert percent(audit["relearn"]["before"])
    assert all(percent(audit["relearn"][b][k]) for b in ("model", "prompt") for k in ("1", "3"))


def test_audits_are_stored_per_task_and_compared_with_the_oracle(pretrained_state, tiny_data, tmp_path):
    oracle, _ = run_one_task("retrain", pretrained_state, tiny_data, tmp_path / "retrain")
    results, settings = run_one_task("gs_lora", pretrained_state, tiny_data, tmp_path / "gs_lora",
                                     oracle=str(tmp_path / "retrain"), rank=4, bound=15.0, beta=0.5)
    saved = json.loads((tmp_path / "gs_lora" / "results.json").read_text())
    audit, theirs = saved["tasks"][0]["audit"], oracle["tasks"][0]["audit"]
    check_ranges(audit)
    check_ranges(theirs)
    assert audit["settings"] == settings.audit.record(settings.seed) == theirs["settings"]
    assert audit["oracle"]["membership"] == theirs["membership"]  # read from the oracle's results.json
    assert audit["gap"]["model"]["3"] == pytest.approx(audit["relearn"]["model"]["3"] - theirs["relearn"]["model"]["3"])

    # Re-audited from the saved checkpoint (test_forget_cl.py --audit), the numbers are the training-time ones.
    stripped = copy.deepcopy(saved)
    del stripped["tasks"][0]["audit"]
    audit_finished_run(tmp_path / "gs_lora", stripped, tiny_data, tiny_tasks(1), settings, tmp_path / "copy")
    again = json.loads((tmp_path / "copy" / "results.json").read_text())["tasks"][0]["audit"]
    keys = ("membership", "probe", "verification", "relearn", "oracle", "gap")
    assert {k: again[k] for k in keys} == {k: audit[k] for k in keys}
    assert json.loads((tmp_path / "gs_lora" / "results.json").read_text()) == saved  # the run's own file untouched


def test_the_oracle_audit_is_read_when_made_alike_else_computed_from_its_checkpoint(tmp_path):
    tasks = tiny_tasks(2)
    plan = [{"task": t.index, "remain": t.remain, "forget": t.forget} for t in tasks]
    results = {"config": {}, "plan": plan, "tasks": [{"task": 0, "audit": {"settings": {"steps": 3}}}]}
    (tmp_path / "results.json").write_text(json.dumps(results))
    (tmp_path / "task-level").mkdir()
    (tmp_path / "task-level" / "Backbone_task_0.pth").touch()

    def compute(path):
        return {"computed from": path.name}

    assert oracle_audit(tmp_path, tasks[0], {"steps": 3}, {}, compute) == {"settings": {"steps": 3}}
    assert oracle_audit(tmp_path, tasks[0], {"steps": 4}, {}, compute) == {"computed from": "Backbone_task_0.pth"}
    assert oracle_audit(tmp_path, tasks[1], {"steps": 3}, {}, compute) is None  # task 1 not finished


def test_the_audit_flags_become_the_run_settings(tmp_path):
    args = parse_args("test", argv=["--audit", "--audit_k", "2", "4", "--audit_steps", "5", "--audit_prompts", "3",
                                    "--audit_oracle", str(tmp_path)])
    settings = settings_from_args(args, tmp_path, torch.device("cpu"), {})
    assert settings.audit == AuditSettings(ks=(2, 4), steps=5, prompts=3, oracle=str(tmp_path.resolve()))
    assert settings_from_args(parse_args("test", argv=[]), tmp_path, torch.device("cpu"), {}).audit is None


def test_an_oracle_of_other_classes_or_flags_without_audit_are_refused(tmp_path):
    task = tiny_tasks(1)[0]
    other = {"config": {}, "plan": [{"task": 0, "remain": task.remain, "forget": task.remain[:2]}]}
    with pytest.raises(UserError, match="forgot other classes in task 0"):
        check_oracle(other, tmp_path, {}, task)
    with pytest.raises(UserError, match="other seed"):
        check_oracle({"config": {"seed": 1}}, tmp_path, {"seed": 2}, task)
    with pytest.raises(SystemExit) as exit_info:
        parse_eval_args("test", ["--run_dir", str(tmp_path), "--audit_out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        parse_eval_args("test", ["--run_dir", str(tmp_path), "--audit", "--audit_oracle", str(tmp_path / "none")])
