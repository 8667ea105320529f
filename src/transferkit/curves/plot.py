"""curve.png: mean test accuracy against labels per class, one line per method."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from transferkit.curves.grid import ADAPTED, ALL, FINETUNED, METHODS, SCRATCH, TRANSFER
from transferkit.curves.verdicts import mean_table
from transferkit.outputs import write_atomic

if TYPE_CHECKING:
    import pandas as pd

_COLOURS = {TRANSFER: "#1f77b4", ADAPTED: "#d62728", SCRATCH: "#7f7f7f", FINETUNED: "#2ca02c"}
_LABELS = {TRANSFER: "transfer: linear probe on {backbone}", SCRATCH: "from scratch: linear probe on {backbone}",
           FINETUNED: "transfer: fine-tuned {backbone} (LP-FT)",
           ADAPTED: "adapted transfer: the probe on {backbone}, test features aligned to the target"}


def plot_curve(frame: pd.DataFrame, path: str | Path, *, title: str | None = None) -> Path:
    """curve.png: mean test accuracy against labels per class (log x-axis), one line per method, a band
    from the lowest to the highest seed, and a dashed line at from scratch with all labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator, PercentFormatter

    table = mean_table(frame)
    n_classes = max(int(frame.attrs.get("n_classes", 1)), 1)
    fig = Figure(figsize=(7.2, 4.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    numeric = sorted({float(s) for s in table["shots"] if s != ALL})
    all_rows = table[table["shots"] == ALL]
    all_x = float(all_rows["n_train"].mean()) / n_classes if len(all_rows) else None
    if all_x is not None and numeric and all_x <= numeric[-1] * 1.2:
        all_x = numeric[-1] * 1.6  # keep 'all' apart from the largest shot count it would sit on
    xs_of = {s: float(s) for s in table["shots"] if s != ALL}
    if all_x is not None:
        xs_of[ALL] = all_x
    seeds = int(table["seeds"].max()) if len(table) else 0
    for method in (m for m in METHODS if m in set(table["method"])):
        part = table[table["method"] == method]
        x = [xs_of[s] for s in part["shots"]]
        backbone = str(frame.loc[frame["method"] == method, "backbone"].iloc[0])
        ax.plot(x, part["mean"], marker="o", color=_COLOURS[method], label=_LABELS[method].format(backbone=backbone))
        if seeds > 1:
            ax.fill_between(x, part["min"], part["max"], color=_COLOURS[method], alpha=0.18, linewidth=0)
    scratch_all = table[(table["method"] == SCRATCH) & (table["shots"] == ALL)]
    if len(scratch_all):
        level = float(scratch_all["mean"].iloc[0])
        ax.axhline(level, color=_COLOURS[SCRATCH], linestyle="--", linewidth=1,
                   label=f"from scratch, all labels ({level:.1%})")
    ax.set_xscale("log")
    ticks = sorted(xs_of.items(), key=lambda kv: kv[1])
    ax.xaxis.set_major_locator(FixedLocator([x for _, x in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    all_per_class = float(all_rows["n_train"].mean()) / n_classes if len(all_rows) else 0.0
    ax.set_xticklabels([f"all\n(≈{all_per_class:.0f})" if s == ALL else s for s, _ in ticks])
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("labelled examples per class (log scale)")
    ax.set_ylabel(f"test accuracy ({frame.attrs.get('n_test', '?')} examples)")
    band = f"; band: lowest to highest of {seeds} seeds" if seeds > 1 else ""
    ax.set_title(title or "data-efficiency curve", fontsize=11)
    ax.text(0.99, 0.02, f"line: mean over seeds{band}", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=8, color="#555555")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, bbox_to_anchor=(1.0, 0.07))
    target = Path(path)
    write_atomic(target, lambda fh: fig.savefig(fh, format="png"), binary=True)
    return target
