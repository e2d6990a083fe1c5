"""The shell scripts parse, and the CPU settings name flags for exactly the registered methods."""
import subprocess
from pathlib import Path

import pytest

import baselines  # noqa: F401  (registers the baselines)
import gs_lora  # noqa: F401  (registers GS-LoRA and GS-LoRA++)
from engine.method import METHODS

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))


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
