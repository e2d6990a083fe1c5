"""The one parser: the original continual GS-LoRA command line, bad flag combinations, YAML defaults, the
accepted-and-ignored original flags. Every line of the original scripts: tests/test_original_command_lines.py."""
import argparse

import pytest

from config import build_parser, parse_args

ORIGINAL_CL_GS_LORA = (
    "-d casia100 -n VIT -head CosFace -e 100 --vit_depth 6 --num_of_first_cls 80 --per_forget_cls 20 "
    "--num_tasks 4 -b 48 --lr 1e-2 --lora_rank 8 --BND 105 --beta 0.15 --alpha 0.0001 "
    "--cl_beta_list 0.2 0.25 0.25 0.2 --prototype --pro_f_weight 0.01 --cl_prof_list 0.01 0.01 0.01 0.01 "
    "--average_weight --ema_epoch 30 --ema_decay 0.9 --warmup-epochs 0 --decay-epochs 100 --min-lr 1e-5 "
    "-w 0 --num_workers 8 --wandb_offline").split()


def test_original_continual_command_line_resolves_to_gs_lora_pp():
    args = parse_args("x", argv=ORIGINAL_CL_GS_LORA)
    assert args.method == "gs_lora_pp"
    assert (args.data_mode, args.net, args.head) == ("casia100", "vit", "cosface")
    assert (args.epochs, args.vit_depth, args.batch_size) == (100, 6, 48)
    assert (args.num_of_first_cls, args.per_forget_cls, args.num_tasks) == (80, 20, 4)
    assert args.lr == 1e-2 and args.min_lr == 1e-5 and args.warmup_epochs == 0
    assert args.lora_rank == 8 and args.BND == 105.0 and args.beta == 0.15 and args.alpha == 1e-4
    assert args.cl_beta_list == [0.2, 0.25, 0.25, 0.2]
    assert args.prototype and args.pro_f_weight == 0.01 and args.cl_prof_list == [0.01] * 4
    assert args.num_workers == 8
    assert args.device == "cuda"  # -w 0 names GPU 0


def test_beta_list_shorter_than_the_tasks_is_a_parser_error(capsys):
    argv = ["--num_tasks", "4", "--cl_beta_list", "0.2", "0.25"]
    with pytest.raises(SystemExit) as exit_info:
        parse_args("x", argv=argv)
    assert exit_info.value.code == 2
    assert "--cl_beta_list has 2 values for 4 tasks" in capsys.readouterr().err


def test_unknown_method_is_a_parser_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args("x", argv=["--method", "no_such_method"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'no_such_method'" in capsys.readouterr().err


def test_yaml_file_sets_defaults_and_the_command_line_wins(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("lr: 0.5\nepochs: 7\nnum_tasks: 2\nmethod: ewc\n")
    args = parse_args("x", argv=["--config", str(config), "--lr", "0.1"])
    assert args.lr == 0.1  # command line
    assert args.epochs == 7 and args.num_tasks == 2 and args.method == "ewc"  # YAML
    assert args.batch_size == 256  # parser default


def test_yaml_file_with_an_unknown_key_is_a_parser_error(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("learning_rate: 0.5\n")
    with pytest.raises(SystemExit):
        parse_args("x", argv=["--config", str(config)])


def test_parser_error_is_one_error_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args("x", argv=["-e", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: argument -e/--epochs: must be at least 1, got 0\n"


def test_prototype_list_longer_than_the_tasks_is_a_parser_error(capsys):
    with pytest.raises(SystemExit):
        parse_args("x", argv=["--num_tasks", "2", "--cl_prof_list", "0.1", "0.1", "0.1"])
    assert "--cl_prof_list has 3 values for 2 tasks" in capsys.readouterr().err


def test_single_step_checks_the_lists_against_its_one_task(capsys):
    assert parse_args("x", argv=["--cl_beta_list", "0.2"], fixed={"num_tasks": 1}).num_tasks == 1
    with pytest.raises(SystemExit):
        parse_args("x", argv=["--cl_beta_list", "0.2", "0.2"], fixed={"num_tasks": 1})
    assert "--cl_beta_list has 2 values for 1 tasks" in capsys.readouterr().err


def test_timm_optimizer_names_are_checked_as_timm_parses_them(capsys):
    assert parse_args("x", argv=["--opt", "Lookahead_AdamW"]).opt == "lookahead_adamw"
    assert parse_args("x", argv=["--SCRUB", "--opt", "rmsp"]).opt == "rmsp"  # the original SCRUB's own name
    with pytest.raises(SystemExit):
        parse_args("x", argv=["--opt", "adamz"])
    assert "unknown timm optimizer 'adamz'" in capsys.readouterr().err


def test_yaml_values_pass_the_flags_types_and_checks(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("lr: 1e-4\nopt_betas: [0.9, 0.99]\ncl_beta_list: 0.2\nnum_tasks: 1\n")  # YAML: '1e-4' a str
    args = parse_args("x", argv=["--config", str(config)])
    assert args.lr == 1e-4 and args.opt_betas == [0.9, 0.99] and args.cl_beta_list == [0.2]
    for text, message in (("epochs: 0\n", "epochs: must be at least 1, got 0"),
                          ("net: vit_face_huge\n", "net: invalid choice 'vit_face_huge'"),
                          ("lr: [0.1, 0.2]\n", "lr takes one value, not a list"),
                          ("- lr\n", "holds a list, not flag names with values")):
        config.write_text(text)
        with pytest.raises(SystemExit):
            parse_args("x", argv=["--config", str(config)])
        assert message in capsys.readouterr().err


def test_single_step_is_one_task_with_the_original_single_step_big_alpha():
    from train_own_forget_cl import forgetting_args
    single = forgetting_args(single_step=True, argv=["--cl_beta_list", "0.2"])
    assert single.num_tasks == 1 and single.big_alpha == 5e-4
    continual = forgetting_args(argv=["--num_tasks", "2"])
    assert continual.big_alpha == 1e-4
    assert forgetting_args(single_step=True, argv=["--big_alpha", "0.01"]).big_alpha == 0.01


IGNORED_GROUP = "accepted for the original command lines; no effect here"


def ignored_flags(forgetting: bool):
    """The flags of the accepted-and-ignored group (its parsed values are never read) and their help texts."""
    parser = build_parser("x", forgetting)
    group = next(g for g in parser._action_groups if g.title == IGNORED_GROUP)
    return {flag: action.help for action in group._group_actions for flag in action.option_strings}


@pytest.mark.parametrize("forgetting", [False, True], ids=["pre-training", "forgetting"])
def test_every_accepted_and_ignored_flag_says_why_in_the_help(forgetting):
    flags = ignored_flags(forgetting)
    assert {"--decay-epochs", "--decay-rate", "--dr", "--wandb_offline"} <= set(flags)
    assert ("--lora_pos" in flags) is not forgetting  # forgetting runs honour it (GS-LoRA's ablation switch)
    assert all(help_text and help_text != argparse.SUPPRESS for help_text in flags.values())


def test_pre_training_accepts_only_the_original_pre_training_parsers_ignored_flags(capsys):
    assert not {"--wandb_group", "--ema_decay", "--one_stage", "--ewc"} & set(ignored_flags(forgetting=False))
    args = parse_args("x", forgetting=False, argv=["--decay-epochs", "150", "--dr", "0.5", "--lr-noise", "0.4", "0.8"])
    assert args.ignored_decay_epochs == "150" and args.ignored_decay_rate == "0.5"
    assert len(capsys.readouterr().err.splitlines()) == 3  # a warning per ignored flag set
    with pytest.raises(SystemExit):
        parse_args("x", forgetting=False, argv=["--wandb_group", "g"])  # the original train_own.py refused it too
    assert capsys.readouterr().err == "error: unrecognized arguments: --wandb_group g\n"


def test_every_ignored_flag_that_is_set_prints_one_warning_and_an_ablation_switch_a_method_cannot_honour_is_refused(
        capsys):
    parse_args("x", forgetting=False, argv=["--decay-epochs", "150", "--wandb_offline", "--lora_pos", "FFN"])
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" is accepted")[0] for line in lines] == ["warning: --decay-epochs", "warning: --wandb_offline"]
    assert "the cosine schedule has none" in lines[0]
    parse_args("x", forgetting=False, argv=["--lora_pos", "Attention"])  # pre-training has no LoRA: a warning
    assert capsys.readouterr().err.startswith("warning: --lora_pos is accepted")
    for method in ("ewc", "gs_lora"):  # the defaults: silent for every method (the original scripts pass them)
        parse_args("x", argv=["--method", method, "--grouping", "block", "--lora_pos", "FFN"])
        assert capsys.readouterr().err == ""
    for flag, value in (("--lora_pos", "Attention"), ("--grouping", "matrix")):
        args = parse_args("x", argv=["--method", "gs_lora_pp", flag, value])
        assert getattr(args, flag[2:]) == value
        with pytest.raises(SystemExit):
            parse_args("x", argv=["--method", "ewc", flag, value])
        assert capsys.readouterr().err == (f"error: {flag} {value} places or groups GS-LoRA's LoRA, but --method ewc "
                                           f"trains no LoRA; drop it\n")
    with pytest.raises(SystemExit):
        parse_args("x", argv=["--method", "gs_lora", "--grouping", "layer"])
    assert "invalid choice: 'layer'" in capsys.readouterr().err


def test_original_test_script_names_are_aliases():
    args = parse_args("x", forgetting=False, argv=["--model", "m.pth", "--network", "vit_face_small", "--depth", "3"])
    assert args.eval_only and args.resume.endswith("m.pth")
    assert (args.net, args.vit_depth) == ("vit_face_small", 3)
    assert not parse_args("x", forgetting=False, argv=["-r", "m.pth"]).eval_only  # -r alone starts from a checkpoint


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("flag", ["--lr", "--alpha", "--val_ratio"])
def test_non_finite_number_is_refused_at_parse_time(capsys, flag, value):
    """Checked by the parser, before any data is read or any file written."""
    with pytest.raises(SystemExit) as exit_:
        parse_args("x", argv=[f"{flag}={value}"])  # "=": argparse reads a lone -inf as a flag
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: argument {flag}") and "finite" in lines[0], lines


def test_data_root_symlink_loop_is_one_parser_error_line(capsys, tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(SystemExit) as exit_:
        parse_args("x", argv=["-d", "imagefolder", "--data_root", str(loop)])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: argument --data_root: {loop} is a symlink loop"], lines


def plan_file(tmp_path, text: str) -> str:
    path = tmp_path / "plan.json"
    path.write_text(text)
    return str(path)


def test_forget_classes_is_one_named_task_and_the_random_order_stays_the_default():
    args = parse_args("x", argv=["--forget_classes", "0000045,0000099", "0000102"])
    assert args.named_tasks == [["0000045", "0000099", "0000102"]] and args.named_missing == []
    assert args.num_tasks == 1 and args.open_cls_num == 0
    plain = parse_args("x", argv=[])
    assert plain.named_tasks is None
    assert (plain.num_of_first_cls, plain.per_forget_cls, plain.num_tasks, plain.open_cls_num) == (90, 10, 9, 0)


def test_plan_file_gives_named_tasks_of_any_size_and_the_missing_classes(tmp_path):
    path = plan_file(tmp_path, '{"tasks": [["0000045", "0000099"], ["0000102"]], "missing": ["0000007"]}')
    args = parse_args("x", argv=["--plan", path, "--cl_beta_list", "0.2", "0.3"])
    assert args.named_tasks == [["0000045", "0000099"], ["0000102"]] and args.named_missing == ["0000007"]
    assert args.num_tasks == 2 and args.open_cls_num == 1


@pytest.mark.parametrize("argv, message", [
    (["--forget_classes", "a", "--num_tasks", "2"], "--forget_classes names the classes to forget; drop --num_tasks"),
    (["--forget_classes", "a", "--per_forget_cls", "2"], "drop --per_forget_cls"),
    (["--forget_classes", "a", "--open_cls_num", "1"], "drop --open_cls_num"),
    (["--forget_classes", "a", "--num_of_first_cls", "80"], "drop --num_of_first_cls"),
    (["--forget_classes", "a", "--order_seed", "3"], "drop --order_seed"),
    (["--forget_classes", "a", "--plan", "p.json"], "--forget_classes and --plan"),
    (["--forget_classes", ","], "--forget_classes names no class"),
])
def test_named_requests_refuse_the_numbered_plan_flags(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args("x", argv=argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert message in err


@pytest.mark.parametrize("text, message", [
    ('{"tasks": [["a"]', "is not valid JSON"),
    ('[["a"]]', 'not {"tasks": [[names], ...], "missing": [names]}'),
    ('{"tasks": [["a"]], "other": 1}', "unknown key other"),
    ('{"tasks": ["a", "b"]}', "tasks must be a list of lists of class names"),
    ('{"tasks": []}', "tasks must be a list of lists of class names"),
    ('{"tasks": [["a"]], "missing": "b"}', "missing must be a list of class names"),
])
def test_bad_plan_file_is_one_error_line(tmp_path, text, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args("x", argv=["--plan", plan_file(tmp_path, text)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert message in err


def test_single_step_refuses_a_plan_of_several_tasks(tmp_path, capsys):
    path = plan_file(tmp_path, '{"tasks": [["a"], ["b"]]}')
    with pytest.raises(SystemExit):
        parse_args("x", argv=["--plan", path], fixed={"num_tasks": 1})
    assert "forgets in one task; --plan has 2" in capsys.readouterr().err
    assert parse_args("x", argv=["--forget_classes", "a"], fixed={"num_tasks": 1}).named_tasks == [["a"]]
