"""Prints the methods' flags for one preset (paper, cpu, smoke): one method's, or a 'name flags...' line each, GS-LoRA
and GS-LoRA++ first. The shell scripts read them from ``Method.presets``, so each value lives once.

    python scripts/method_flags.py cpu gs_lora      # --lr 1e-2 --lora_rank 8 --BND auto ...
    python scripts/method_flags.py cpu              # gs_lora --lr 1e-2 ...  (one line per registered method)"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import baselines  # noqa: E402,F401  (registers every baseline)
from engine.method import METHODS  # noqa: E402
from gs_lora import GSLoRA  # noqa: E402  (registers GS-LoRA and GS-LoRA++)

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", choices=("paper", "cpu", "smoke"), help="which setting's flags")
    parser.add_argument("method", nargs="?", choices=METHODS.names(), help="one registered method (default: all)")
    args = parser.parse_args()
    if args.method:
        print(METHODS.get(args.method).presets[args.preset])
    else:
        # GS-LoRA and its variants first, then the baselines: the order of the papers' tables.
        for method in sorted(METHODS.unique(), key=lambda m: not issubclass(m, GSLoRA)):
            print(method.name, method.presets[args.preset])


if __name__ == "__main__":
    main()
