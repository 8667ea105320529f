"""Everything the CLI prints that more than one command shows: data summaries, metrics, skips, notes.

This package (`transferkit.commands`) is the only one that talks to the terminal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.table import Table

from transferkit.data.dataset import LabelledData
from transferkit.jsontypes import JSONObject

if TYPE_CHECKING:
    from transferkit.metrics import Metrics


class Terminal(Console):
    """A rich Console whose lines of text are never broken by us: a path stays whole to copy out of a log.

    Rich folds a word longer than the width (80 columns when the output is a pipe), which split paths
    mid-name; lines of text are printed soft-wrapped (the terminal wraps them), tables still fit the width.
    """

    def print(self, *objects: Any, **options: Any) -> None:
        if "soft_wrap" not in options and all(isinstance(o, str) for o in objects):
            options["soft_wrap"] = True
        super().print(*objects, **options)


console = Terminal()
err = Terminal(stderr=True)


def warning_as_note(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    file: TextIO | None = None, line: str | None = None) -> None:
    """`warnings.showwarning` for the CLI: a warning (a corrupt cache shard, a full disk…) is one
    `note:` line on stderr, like the CLI's own notes, never Python's format with source lines."""
    from rich.markup import escape

    text = " ".join(str(message).split())
    err.print(f"[yellow]note:[/] {escape(text)}", highlight=False)


def print_class_counts(data: LabelledData, splits: dict[str, list[int]], out: Console) -> None:
    table = Table(title=f"{data.source}: {len(data)} inputs, {len(data.classes)} classes")
    table.add_column("class")
    names = [s for s in ("train", "val", "test") if splits.get(s)]
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("total", justify="right")
    for cls in data.classes:
        counts = [sum(1 for i in splits[s] if data.labels[i] == cls) for s in names]
        table.add_row(cls, *map(str, counts), str(sum(counts)))
    table.add_row("[bold]all", *[f"[bold]{len(splits[s])}" for s in names], f"[bold]{len(data)}")
    out.print(table)


def print_skipped(skipped: dict[str, str], out: Console, limit: int = 10) -> None:
    if not skipped:
        return
    out.print(f"[yellow]skipped {len(skipped)} unreadable input(s):[/]")
    for path, reason in list(skipped.items())[:limit]:
        out.print(f"  - {reason if path in reason else f'{path}: {reason}'}", highlight=False)
    if len(skipped) > limit:
        out.print(f"  … and {len(skipped) - limit} more (all listed in the bundle's transferkit.json)")


def print_metrics(metrics: Metrics, out: Console, title: str = "test") -> None:
    for table in metrics_tables(metrics, title=title):
        out.print(table)


def text_notes_line(notes: JSONObject) -> str | None:
    """One line about text repairs and truncation (None when the data was not text)."""
    if "long_text" not in notes and not notes.get("non_utf8_rows") and not notes.get("empty_texts"):
        return None
    parts = []
    if notes.get("non_utf8_rows"):
        parts.append(f"{notes['non_utf8_rows']} row(s) had bytes that are not UTF-8 (replaced by '\ufffd')")
    if notes.get("empty_texts"):
        parts.append(f"{notes['empty_texts']} empty text(s) left out")
    if notes.get("long_text") == "chunk":
        parts.append(f"long texts split into {notes.get('max_tokens')}-token chunks and pooled"
                     + (f"; {notes['truncated_texts']} exceeded the chunk budget and were cut"
                        if notes.get("truncated_texts") else ""))
    elif "long_text" in notes:
        parts.append(f"{notes.get('truncated_texts', 0)} text(s) longer than {notes.get('max_tokens')} tokens "
                     "were truncated" + (" (use --long-text chunk to pool over chunks)"
                                         if notes.get("truncated_texts") else ""))
    return "text: " + "; ".join(parts)


def column_notes(columns: dict[str, JSONObject], where: str) -> list[str]:
    """Per table column: missing cells, unreadable files, unseen categories, truncated texts (only if any)."""
    lines = []
    for name, rep in columns.items():
        counts = {k: v for k, v in rep.items() if k != "examples" and v}
        if not counts:
            continue
        what = ", ".join(f"{v} {k}" for k, v in counts.items())
        lines.append(f"{where}column '{name}': {what} (zero embedding + missing mask)"
                     + "".join(f"\n  - {example}" for example in rep.get("examples", [])[:3]))
    return lines


def metrics_tables(metrics: Metrics, title: str = "test") -> list[Table]:
    """rich Tables: the summary, per-class scores, and the confusion matrix (small class counts)."""
    from rich.table import Table

    if not metrics.get("n"):
        return []
    summary = Table(title=f"{title} ({metrics['n']} examples)")
    for col in ("accuracy", "balanced accuracy", "macro-F1"):
        summary.add_column(col, justify="right")
    summary.add_row(
        f"{metrics['accuracy']:.2%}", f"{metrics['balanced_accuracy']:.2%}", f"{metrics['macro_f1']:.3f}"
    )
    per_class = Table(title="per class")
    for col, justify in (("class", "left"), ("precision", "right"), ("recall", "right"), ("F1", "right"),
                         ("support", "right")):
        per_class.add_column(col, justify=justify)  # type: ignore[arg-type]
    for name, row in metrics["per_class"].items():
        per_class.add_row(name, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}",
                          str(row["support"]))
    tables = [summary, per_class]
    cm = metrics["confusion_matrix"]
    if len(cm["labels"]) <= 20:
        matrix = Table(title="confusion matrix (rows: true, columns: predicted)")
        matrix.add_column("")
        for label in cm["labels"]:
            matrix.add_column(label[:10], justify="right")
        for label, counts in zip(cm["labels"], cm["matrix"], strict=True):
            matrix.add_row(label[:16], *[str(v) if v else "·" for v in counts])
        tables.append(matrix)
    return tables


def print_shift(diagnostic: JSONObject, out: Console, *, heading: str | None = None) -> None:
    """The diagnostic as rich tables and its verdict (also what `fit --adapt-to` prints)."""
    from rich.table import Table

    from transferkit.adapt.shift_diagnostic import ShiftDiagnostic

    diag = ShiftDiagnostic.from_dict(diagnostic)
    after = diag.domain_accuracy_aligned is not None
    table = Table(title=heading or "how far is the target?", title_justify="left")
    table.add_column("")
    table.add_column("before alignment", justify="right")
    if after:
        table.add_column(f"after {diag.alignment or 'alignment'}", justify="right")
    table.add_row("inputs (DATA / TARGET)", f"{diag.n_source} / {diag.n_target}", *([""] if after else []))
    table.add_row("domain classifier accuracy", f"{diag.domain_accuracy:.1%}",
                  *([f"{diag.domain_accuracy_aligned:.1%}"] if after else []))
    table.add_row("proxy A-distance (0–2)", f"{diag.proxy_a_distance:.2f}",
                  *([f"{diag.proxy_a_distance_aligned:.2f}"] if after else []))
    out.print(table)
    if diag.per_class:
        per = Table(title=f"per class of DATA (domain accuracy, {diag.folds}-fold held out; ½ = alike)",
                    title_justify="left")
        for name in ("class", "DATA", "TARGET nearest", "domain acc."):
            per.add_column(name, justify="left" if name == "class" else "right")
        if after:
            per.add_column("after", justify="right")
        per.add_column("target distance ×", justify="right")
        rows = sorted(diag.per_class, key=lambda c: -(c.domain_accuracy or 0.0))
        for c in rows[:25]:
            per.add_row(c.label, str(c.n_source), str(c.n_target), pct_or_dash(c.domain_accuracy),
                        *([pct_or_dash(c.domain_accuracy_aligned)] if after else []),
                        f"{c.distance_ratio:.2f}" if c.distance_ratio is not None else "—")
        if len(rows) > 25:
            per.caption = f"{len(rows) - 25} more classes in shift.json"
        out.print(per)
    out.print(f"[bold]verdict:[/] {diag.verdict()}", highlight=False)


def pct_or_dash(v: float | None) -> str:
    return "—" if v is None else f"{v:.0%}"
