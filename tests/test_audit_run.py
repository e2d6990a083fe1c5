"""The audits end to end on the tiny fixtures: a one-task run with --audit stores every audit number in range, a
GS-LoRA run audited against a Retrain oracle reports the oracle's numbers and the relearn gap, the audit of a
finished run from its checkpoint equals the one made during training, the --audit flags become the run's audit
settings, bad audit input is one error line, and audit_model gives the kNN probe and the membership attacks the
images they must see (traced through model outputs that name their image)."""
import copy
import dataclasses
import json

import pytest
import torch
from conftest import NUM_CLASSES, tiny_settings, tiny_tasks

import audit.run as audit_run
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
    oracle, oracle_settings = run_one_task("retrain", pretrained_state, tiny_data, tmp_path / "retrain")
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

    # The oracle's folder among the audited runs (test_forget_cl.py --run_dir runs/x/* --audit_oracle runs/x/oracle)
    # is not compared with itself: its audit carries no gaps, so it is never listed as near the oracle.
    own = dataclasses.replace(oracle_settings, audit=dataclasses.replace(oracle_settings.audit,
                                                                         oracle=str(tmp_path / "retrain")))
    audit_finished_run(tmp_path / "retrain", copy.deepcopy(oracle), tiny_data, tiny_tasks(1), own, tmp_path / "own")
    own_audit = json.loads((tmp_path / "own" / "results.json").read_text())["tasks"][0]["audit"]
    assert "gap" not in own_audit and "oracle" not in own_audit and own_audit["probe"] == theirs["probe"]


def test_the_oracle_audit_is_read_when_made_alike_else_computed_from_its_checkpoint(tmp_path):
    tasks = tiny_tasks(2)
    plan = [{"task": t.index, "remain": t.remain, "forget": t.forget} for t in tasks]
    results = {"method": "oracle", "config": {}, "plan": plan,
               "tasks": [{"task": 0, "audit": {"settings": {"steps": 3}}}]}
    (tmp_path / "results.json").write_text(json.dumps(results))
    (tmp_path / "task-level").mkdir()
    (tmp_path / "task-level" / "Backbone_task_0.pth").touch()

    def compute(path):
        return {"computed from": path.name}

    assert oracle_audit(tmp_path, tasks[0], {"steps": 3}, {}, compute) == {"settings": {"steps": 3}}
    assert oracle_audit(tmp_path, tasks[0], {"steps": 4}, {}, compute) == {"computed from": "Backbone_task_0.pth"}
    assert oracle_audit(tmp_path, tasks[1], {"steps": 3}, {}, compute) is None  # task 1 not finished
    # A stored audit of other subsets (another --seed) is not reused: the oracle is audited afresh on ours.
    computed = {"computed from": "Backbone_task_0.pth"}
    assert oracle_audit(tmp_path, tasks[0], {"steps": 3}, {"seed": 5}, compute) == computed


def test_the_audit_flags_become_the_run_settings(tmp_path):
    args = parse_args("test", argv=["--audit", "--audit_k", "2", "4", "--audit_steps", "5", "--audit_prompts", "3",
                                    "--audit_oracle", str(tmp_path)])
    settings = settings_from_args(args, tmp_path, torch.device("cpu"), {})
    assert settings.audit == AuditSettings(ks=(2, 4), steps=5, prompts=3, oracle=str(tmp_path.resolve()))
    assert settings_from_args(parse_args("test", argv=[]), tmp_path, torch.device("cpu"), {}).audit is None


def test_an_oracle_of_other_classes_or_flags_without_audit_are_refused(tmp_path):
    task = tiny_tasks(1)[0]
    other = {"method": "oracle", "config": {},
             "plan": [{"task": 0, "remain": task.remain, "forget": task.remain[:2]}]}
    with pytest.raises(UserError, match="forgot other classes in task 0"):
        check_oracle(other, tmp_path, {}, task)
    with pytest.raises(UserError, match="other seed"):  # a Retrain oracle must have trained on the same subsets
        check_oracle({"method": "retrain", "config": {"seed": 1}}, tmp_path, {"seed": 2}, task)
    check_oracle({"method": "oracle", "config": {"seed": 1}}, tmp_path, {"seed": 2}, task)  # a true one need not
    with pytest.raises(UserError, match="other validation_seed"):  # descends from another pre-trained model
        check_oracle({"method": "oracle", "config": {"validation_seed": 1}}, tmp_path, {"validation_seed": 2}, task)
    for method in ("gs_lora", "l2", None):
        with pytest.raises(UserError, match="train_oracle.py or a Retrain run"):
            check_oracle({"method": method, "config": {}}, tmp_path, {}, task)
    with pytest.raises(SystemExit) as exit_info:
        parse_eval_args("test", ["--run_dir", str(tmp_path), "--audit_out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        parse_eval_args("test", ["--run_dir", str(tmp_path), "--audit", "--audit_oracle", str(tmp_path / "none")])


# The wiring of audit_model: which images each attack learns from and which it is scored on. The model's outputs are
# replaced by ones that name their image, so every row an attack or the probe receives can be traced back to it.
TEST_OFFSET = 5.0  # codes of test images; training images get 0.01 * (index + 1) < 5 (at most 320 of them)


def image_code(is_test: bool, indices: torch.Tensor) -> torch.Tensor:
    return 0.01 * (indices.double() + 1) + (TEST_OFFSET if is_test else 0.0)


def image_of(code: float):
    """("test" | "train", index) of an image code (a loss in nats, accurate to float32 logits: far within 0.005)."""
    is_test = code > TEST_OFFSET - 0.5
    return ("test" if is_test else "train", round((code - (TEST_OFFSET if is_test else 0.0)) / 0.01) - 1)


def naming_outputs(data):
    """A stand-in for model_outputs: embedding (1 for a test image else 0, index) and logits whose true-class cross
    entropy is the image's code (the true class has logit 0, the others o with 1 / (1 + (C - 1) e^o) = e^-code)."""

    def outputs(model, images, indices, *args):
        is_test, labels = images is data.test, images.targets[indices]
        code = image_code(is_test, indices)
        logits = torch.log(torch.expm1(code) / (NUM_CLASSES - 1))[:, None].repeat(1, NUM_CLASSES)
        logits[torch.arange(len(indices)), labels] = 0.0
        embeddings = torch.stack([torch.full_like(code, float(is_test)), indices.double()], dim=1)
        return logits.float(), embeddings.float(), labels

    return outputs


def recorder(calls: list, result):
    """A stand-in that appends its arguments to ``calls`` and returns ``result(calls so far)``: a result names its
    call."""

    def record(*args):
        calls.append(args)
        return result(len(calls))

    return record


def audit_with_recorders(tiny_data, tmp_path, monkeypatch):
    """audit_model with naming outputs and the probe and both attacks recording what they are given (verification
    and relearning skipped); returns the task, its remain and forget subsets, the calls and the audit."""
    calls = {"knn": [], "classifier": [], "loss": []}
    monkeypatch.setattr(audit_run, "model_outputs", naming_outputs(tiny_data))
    monkeypatch.setattr(audit_run, "knn_accuracy", recorder(calls["knn"], float))  # returns the call's number
    monkeypatch.setattr(audit_run, "classifier_attack", recorder(calls["classifier"], lambda n: {"call": n}))
    monkeypatch.setattr(audit_run, "loss_threshold_attack", recorder(calls["loss"], lambda n: {"call": n}))
    monkeypatch.setattr(audit_run, "verification", lambda *args: {})
    monkeypatch.setattr(audit_run, "relearn_attacks", lambda *args: {})
    task = tiny_tasks(1)[0]  # remain 0-5, forget 6 and 7
    train_idx, targets = tiny_data.train_idx, tiny_data.train.targets
    remain_idx = train_idx[targets[train_idx] < 6][::2]  # a strict subset of the remain classes' training images
    forget_idx = train_idx[targets[train_idx] >= 6][::3]
    settings = tiny_settings(tmp_path, audit=AuditSettings(images=6))
    audit = audit_run.audit_model(None, tiny_data, task, remain_idx, forget_idx, settings)  # outputs stand in
    return task, remain_idx, forget_idx, calls, audit


def images_in(tiny_data, split: str, classes, pool=None) -> set:
    """The (split, index) names of the images of ``classes`` in a split (within ``pool`` when given)."""
    targets = (tiny_data.train if split == "train" else tiny_data.test).targets
    pool = range(len(targets)) if pool is None else pool.tolist()
    return {(split, int(i)) for i in pool if int(targets[i]) in classes}


def names(codes) -> list:
    return [image_of(float(c)) for c in codes]


def embedded_names(embeddings: torch.Tensor) -> list:
    return [("test" if flag else "train", int(i)) for flag, i in embeddings.tolist()]


def check_sample(found: list, pool: set, classes, tiny_data, cap: int = 6) -> None:
    """``found`` holds distinct images of ``pool`` only, ``cap`` of each of ``classes`` (the pools hold more)."""
    assert len(set(found)) == len(found), "an image drawn twice"
    assert not set(found) - pool, f"images from outside the expected set: {sorted(set(found) - pool)[:4]}"
    labels = [int((tiny_data.train if s == "train" else tiny_data.test).targets[i]) for s, i in found]
    assert sorted(labels) == sorted(c for c in classes for _ in range(cap))


def test_the_knn_probe_is_fitted_on_training_images_and_never_on_its_queries(tiny_data, tmp_path, monkeypatch):
    """The probe fits on the members and the forget set (training images of every class of the task) and is scored on
    the forgotten and retained classes' test images: no query image may be among the fitted ones, or it finds
    itself as its own nearest neighbour and the probe reads knowledge that is not there."""
    task, remain_idx, forget_idx, calls, audit = audit_with_recorders(tiny_data, tmp_path, monkeypatch)
    assert len(calls["knn"]) == 2
    fit_f, fit_labels_f, query_f, query_labels_f = calls["knn"][int(audit["probe"]["acc_f"]) - 1]
    fit_r, _, query_r, _ = calls["knn"][int(audit["probe"]["acc_r"]) - 1]
    assert torch.equal(fit_f, fit_r)
    fitted, queries_f, queries_r = embedded_names(fit_f), embedded_names(query_f), embedded_names(query_r)
    leaked = set(fitted) & (set(queries_f) | set(queries_r))
    assert not leaked, f"query images among the fitted ones: {sorted(leaked)[:4]}"
    check_sample(queries_f, images_in(tiny_data, "test", task.forget), task.forget, tiny_data)
    check_sample(queries_r, images_in(tiny_data, "test", task.remain), task.remain, tiny_data)
    check_sample(fitted, images_in(tiny_data, "train", task.remain, remain_idx)
                 | images_in(tiny_data, "train", task.forget, forget_idx), task.remain + task.forget, tiny_data)
    assert fit_labels_f.tolist() == [int(tiny_data.train.targets[i]) for _, i in fitted]
    assert query_labels_f.tolist() == [int(tiny_data.test.targets[i]) for _, i in queries_f]


def test_the_membership_attacks_learn_members_from_retained_training_images_and_score_the_forget_set(
        tiny_data, tmp_path, monkeypatch):
    """Both attacks learn "member" on the retained classes' training images the model trained on (the task's remain
    subset) against their test images, and are applied to the forget set. Learning "member" on the forget images
    themselves would call them members whatever the model remembers."""
    task, remain_idx, forget_idx, calls, audit = audit_with_recorders(tiny_data, tmp_path, monkeypatch)
    assert audit["membership"] == {"classifier": {"call": 1}, "loss_threshold": {"call": 1}}
    members = images_in(tiny_data, "train", task.remain, remain_idx)
    non_members = images_in(tiny_data, "test", task.remain)
    forget_set = images_in(tiny_data, "train", task.forget, forget_idx)
    (features_m, features_n, features_t), = calls["classifier"]
    (losses_m, losses_n, losses_t), = calls["loss"]
    for attack_members, attack_non_members, targets in ((features_m[:, 2], features_n[:, 2], features_t[:, 2]),
                                                        (losses_m, losses_n, losses_t)):
        check_sample(names(attack_members), members, task.remain, tiny_data)
        check_sample(names(attack_non_members), non_members, task.remain, tiny_data)
        check_sample(names(targets), forget_set, task.forget, tiny_data)
