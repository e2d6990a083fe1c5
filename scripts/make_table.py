"""Turns the results.json of forgetting runs into the papers' tables (Markdown and CSV) and three plots.

    python scripts/make_table.py results/cl/full/*            # -> results/cl/full/table.md, table.csv, *.png
    python scripts/make_table.py runs/compare/* --out report --convention plain

Runs of one setting (continual or single-step, few-shot or not, missing classes or not, one data set) form one table;
several settings get one set of files each (table_<setting>.md ...). Rows are methods, columns the papers' "a-b"
settings; every H is checked. Audited runs also get audit.md/.csv; the plots are group_norms, accuracy and cost.png."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from util.errors import UserError  # noqa: E402
from util.files import read_results  # noqa: E402
from util.table import (DISPLAY_NAMES, Run, build_audit_table, build_table, distinct_row_names,  # noqa: E402
                        markdown_table, write_tables)


def setting_of(results: dict) -> str:
    """The table a run belongs to, as a file-name slug: e.g. 'casia100_continual', 'synthetic_single-step_few-shot'."""
    cfg = results.get("config", {})
    parts = [cfg.get("data_mode", "data"), "continual" if len(results.get("plan", [])) > 1 else "single-step"]
    parts += [part for key, part in (("few_shot", "few-shot"), ("open_cls_num", "missing")) if cfg.get(key)]
    return "_".join(parts)


def load_runs(run_dirs: list[str]) -> dict[str, list[Run]]:
    """{setting: [(row name, results)]} in the order given; one method's runs in one column differ by folder."""
    groups: dict[str, list[tuple[str, Path, dict]]] = {}
    # A shell glob over a section's folder also matches the tables and plots written there: files are skipped.
    for run_dir in [Path(d) for d in run_dirs if not Path(d).is_file()]:
        results = read_results(run_dir, f"is {run_dir} a run folder of train_own_forget(_cl).py?")
        name = DISPLAY_NAMES.get(results.get("method"), results.get("method") or run_dir.name)
        groups.setdefault(setting_of(results), []).append((name, run_dir.resolve(), results))
    if not groups:
        raise UserError("no run folders given (only files)")
    return {setting: list(zip(distinct_row_names(runs), (results for _, _, results in runs)))
            for setting, runs in groups.items()}


def write_outputs(runs: list[Run], out: Path, suffix: str, convention: str, plots: bool) -> list[Path]:
    """Writes the tables (Markdown, CSV) and the three plots into ``out``, prints the tables; returns the paths."""
    written = write_tables(out, runs, suffix, convention)
    if plots:
        from util.plots import plot_accuracy, plot_cost, plot_group_norms

        written += [p for p in (plot_group_norms(runs, out / f"group_norms{suffix}.png"),
                                plot_accuracy(runs, out / f"accuracy{suffix}.png", convention),
                                plot_cost(runs, out / f"cost{suffix}.png", convention)) if p is not None]
    for table in (build_table(runs, convention), build_audit_table(runs)):
        if table is not None:
            print(markdown_table(table))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", help="run folders, each holding a results.json")
    parser.add_argument("--out", help="where the tables and plots go (default: the first run folder's parent)")
    parser.add_argument("--convention", default="original", choices=["original", "plain"],
                        help="accuracy convention: original (margin logits, the papers') or plain (cosine logits)")
    parser.add_argument("--no_plots", action="store_true", help="write the tables only")
    args = parser.parse_args()
    out = Path(args.out) if args.out else Path(args.run_dirs[0]).resolve().parent
    try:
        groups = load_runs(args.run_dirs)
        for setting, runs in groups.items():
            suffix = "" if len(groups) == 1 else f"_{setting}"
            print(f"## {setting} ({args.convention} convention)\n")
            for path in write_outputs(runs, out, suffix, args.convention, not args.no_plots):
                print(f"wrote {path}")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
