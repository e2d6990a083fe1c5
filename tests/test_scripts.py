"""The shell scripts parse, and the CPU settings name flags for exactly the registered methods."""
import subprocess
from pathlib import Path

import pytest

import baselines  # noqa: F401  (registers the baselines)
import gs_lora  # noqa: F401  (registers GS-LoRA and GS-LoRA++)
from config import parse_args
from engine import METHODS

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses(script):
    subprocess.run(["bash", "-n", str(script)], check=True)


def cpu_method_flags(method: str) -> str:
    command = f"source scripts/cpu_settings.sh && method_flags {method}"
    return subprocess.run(["bash", "-c", command], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def test_cpu_settings_cover_every_method_with_valid_flags():
    listed = subprocess.run(["bash", "-c", "source scripts/cpu_settings.sh && echo ${ALL_METHODS[@]}"],
                            cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert sorted(listed) == METHODS.names()
    for method in listed:
        args = parse_args("x", argv=["--num_tasks", "4", "--method", method] + cpu_method_flags(method).split())
        assert args.method == method
