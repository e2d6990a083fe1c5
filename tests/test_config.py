"""The one parser: the original continual GS-LoRA command line, bad flag combinations, YAML defaults."""
import pytest

from config import parse_args

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
