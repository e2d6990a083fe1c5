"""Pictures of forgetting runs as PNG next to their table (matplotlib, Agg backend, imported lazily): the run plots take
the table's (row name, results) pairs; ``plot_sweep`` draws one flag of scripts/sweep.py against its value."""
from pathlib import Path
from typing import Sequence

from util.table import Run, collect, present, setting_label

FIGURE_DPI = 120
# The heat map's x axis per GS-LoRA --grouping: the groups of a finer grouping come in block order.
GROUPING_LABELS = {"block": "transformer block", "lora": "LoRA layer (in block order)",
                   "matrix": "LoRA matrix (in block order)"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_group_norms(runs: Sequence[Run], path: Path) -> Path | None:
    """Per GS-LoRA run a heat map of the norms the group lasso penalises, task by group (block, layer or matrix)."""
    settings, _, _, tasks_of = collect(runs)
    drawn = [(name, [t for t in tasks if t.get("group_norms")]) for name, tasks in tasks_of.items()]
    drawn = [(name, tasks) for name, tasks in drawn if tasks]
    if not drawn:
        return None
    plt = _pyplot()
    top = max(max(max(t["group_norms"]) for t in tasks) for _, tasks in drawn)
    fig, axes = plt.subplots(1, len(drawn), figsize=(1.8 + 3.6 * len(drawn), 2.2 + 0.45 * len(settings)),
                             squeeze=False, constrained_layout=True)
    plans = {name: {p["task"]: p for p in results.get("plan", [])} for name, results in runs}
    xlabels = {name: GROUPING_LABELS[results.get("config", {}).get("grouping", "block")] for name, results in runs}
    for ax, (name, tasks) in zip(axes[0], drawn):
        norms = [t["group_norms"] for t in tasks]
        image = ax.imshow(norms, cmap="viridis", vmin=0, vmax=top, aspect="auto")
        blocks = len(norms[0])
        ax.set_xticks(range(blocks), [str(b + 1) for b in range(blocks)])
        ax.set_yticks(range(len(tasks)), [setting_label(plans.get(name, {}).get(t["task"]), t["task"]) for t in tasks])
        ax.set(xlabel=xlabels[name], ylabel="task (classes known - forgotten)", title=name)
        if blocks * len(tasks) <= 60:
            for i, row in enumerate(norms):
                for j, value in enumerate(row):
                    ax.text(j, i, f"{value:.2g}", ha="center", va="center", fontsize=7,
                            color="white" if value < 0.6 * top else "black")
    fig.colorbar(image, ax=axes[0].tolist(), label="LoRA group norm (L2)")
    fig.suptitle("Which blocks GS-LoRA changed")
    return _save(fig, plt, path)


MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def _nan(values: Sequence[float | None]) -> list:
    """Missing values as NaN, which matplotlib leaves as a gap in the line."""
    return [float("nan") if v is None else v for v in values]


def _style(plt, index: int) -> dict:
    """A colour and marker per method: 20 distinct colours (tab20) and 7 markers, so 13 methods never share one."""
    return {"color": plt.get_cmap("tab20")(index % 20), "marker": MARKERS[index % len(MARKERS)]}


def plot_accuracy(runs: Sequence[Run], path: Path, convention: str = "original") -> Path:
    """Acc_r (left) and Acc_f (right) per setting, one line per method; the pre-trained model dashed."""
    settings, cells, pretrained, _ = collect(runs, convention)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    x = list(range(len(settings)))
    for ax, key, title in ((axes[0], "acc_r", "Remembered classes (higher is better)"),
                           (axes[1], "acc_f", "Forgotten classes (lower is better)")):
        before = [pretrained.get(s, {}).get(key) for s in settings]
        if any(v is not None for v in before):
            ax.plot(x, _nan(before), "k--", label="Pre-train")
        for index, (name, row) in enumerate(cells.items()):
            ax.plot(x, _nan([row.get(s, {}).get(key) for s in settings]), label=name, **_style(plt, index))
        ax.set_xticks(x, settings)
        ax.set(xlabel="task (classes known - forgotten)", ylim=(-2, 102), title=title,
               ylabel=f"{'Acc_r' if key == 'acc_r' else 'Acc_f'} (%, {convention} convention)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return _save(fig, plt, path)


def plot_cost(runs: Sequence[Run], path: Path, convention: str = "original") -> Path:
    """Mean H over the settings against tunable parameters (%, log scale) and against wall time (s)."""
    _, cells, _, tasks_of = collect(runs, convention)
    plt = _pyplot()
    from matplotlib import ticker
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for index, (name, row) in enumerate(cells.items()):
        hs = present(row.values(), "h_mean")
        ratio, wall = (present(tasks_of[name], k) for k in ("trainable_ratio", "wall_time_s"))
        if not hs:
            continue
        h = sum(hs) / len(hs)
        for ax, value in ((axes[0], max(ratio) if ratio else None), (axes[1], sum(wall) if wall else None)):
            if value is not None:
                ax.scatter(value, h, s=40, **_style(plt, index))
                ax.annotate(name, (value, h), textcoords="offset points", xytext=(5, 3), fontsize=8)
    axes[0].set_xscale("log")
    # Plain percentages on the log axis; matplotlib's default minor labels (3x10^1 ...) overlap at this width.
    axes[0].xaxis.set_major_locator(ticker.FixedLocator([0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]))
    axes[0].xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    axes[0].xaxis.set_minor_formatter(ticker.NullFormatter())
    axes[0].set(xlabel="trainable parameters (% of the model, log scale)", title="H against trainable parameters")
    axes[1].set(xlabel="wall time, all tasks (s)", title="H against wall time")
    for ax in axes:
        ax.set(ylabel=f"mean H over tasks (%, {convention} convention)")
        ax.margins(x=0.15, y=0.1)  # room for the method names
        ax.grid(alpha=0.3)
    return _save(fig, plt, path)


SWEEP_SPLITS = (("val", "validation split (what selection sees)"), ("test", "test split"))
SWEEP_PANELS = (("h_mean", "H", "bound", "H* bound"), ("acc_r", "Acc_r", "acc_r_before", "before the task"),
                ("acc_f", "Acc_f", None, None))


def _sweep_axis(values: Sequence[str]):
    """A flag's values: one x slot each (None when all are numbers, placed by value), and whether to use a log scale."""
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        return list(dict.fromkeys(values)), False
    return None, min(numbers) > 0 and max(numbers) >= 20 * min(numbers)


def plot_sweep(option: str, lines, path: Path, title: str) -> Path:
    """H, Acc_r, Acc_f (columns) on both splits (rows) against ``option``'s value, H* and Acc_r before dashed."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(11.5, 5.8), constrained_layout=True, squeeze=False)
    slots, log_scale = _sweep_axis([v for points in lines.values() for v, _ in points])
    for row, (split, split_title) in zip(axes, SWEEP_SPLITS):
        for ax, (key, name, reference, reference_name) in zip(row, SWEEP_PANELS):
            for index, (label, points) in enumerate(lines.items()):
                x = [float(v) if slots is None else slots.index(v) for v, _ in points]
                style = _style(plt, index)
                ax.plot(x, _nan([task.get(split, {}).get(key) for _, task in points]), label=label, **style)
                if reference:
                    ax.plot(x, _nan([task.get(split, {}).get(reference) for _, task in points]), "--",
                            color=style["color"], label=f"{label}: {reference_name}")
            if slots is not None:
                ax.set_xticks(range(len(slots)), slots)
            elif log_scale:
                ax.set_xscale("log")
            ax.set(xlabel=option, ylabel=f"{name} (%)")
            if key == "acc_f":  # from 0, so that a change of hundredths does not fill the panel
                ax.set_ylim(bottom=0)
            ax.set_title(f"{name}, {split_title}", fontsize=10)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    axes[0][1].legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, plt, path)


def _save(fig, plt, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=FIGURE_DPI)
    plt.close(fig)
    return path
