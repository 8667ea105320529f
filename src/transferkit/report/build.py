"""`write_report`: one self-contained HTML page about a trained model on labelled data.

The page (Jinja2 template beside this file, figures from `plots`) shows, in order: the headline
scores, the configuration, the data (class counts per split, skipped inputs with reasons), the
training curves of a fine-tuning run, the backbone candidates when the backbone was chosen by
ranking, the data-efficiency curve when the run has one, the confusion matrix, per-class scores,
the reliability diagram with its expected calibration error, the most confidently wrong examples,
and a 2-D map of the embeddings. Every image is a PNG data URI; a Content-Security-Policy forbids
fetching anything, so the page looks the same offline, mailed, or archived.

The file is written atomically (temporary sibling, then rename). An existing file is replaced only
when it is a transferkit report itself (it carries the generator tag); anything else is refused.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from transferkit import curves
from transferkit.bundle import REPORT_GENERATOR, is_report
from transferkit.data.dataset import LabelledData
from transferkit.errors import ConfigError
from transferkit.jsontypes import JSONObject
from transferkit.outputs import write_atomic
from transferkit.report import plots
from transferkit.report.analysis import Analysis, analyse, embedding_map
from transferkit.report.labelled import ReportData, from_labelled, model_modality

if TYPE_CHECKING:
    from transferkit.estimators.transfer_estimator import TransferEstimator
    from transferkit.metrics import Metrics

GENERATOR = REPORT_GENERATOR  # what `bundle.is_report` recognises
#: skipped inputs listed on the page (the bundle lists them all)
SKIPPED_SHOWN = 50
#: files of a run folder that another part of transferkit writes, shown when present
LOG_FILE = Path("logs") / "metrics.csv"
CURVE_PNG, CURVE_CSV = "curve.png", "curve.csv"


def write_report(
    model: TransferEstimator,
    data: LabelledData | ReportData,
    out_html: str | Path,
    *,
    run_dir: str | Path | None = None,
    title: str | None = None,
    n_wrong: int = 12,
) -> Path:
    """Evaluate `model` (a loaded bundle) on `data` and write the report to `out_html`.

    `run_dir` is the bundle's folder: its fine-tuning logs (`logs/metrics.csv`) and
    data-efficiency curve (`curve.png` / `curve.csv`) are included when present.
    Returns the path written.
    """
    out = Path(out_html)
    _check_writable(out)
    manifest: JSONObject = dict(getattr(model, "manifest_", None) or {})
    report_data = data if isinstance(data, ReportData) else from_labelled(
        manifest, data, description=f"{data.source} ({len(data)} examples)")
    result = analyse(model, report_data.data, n_wrong=n_wrong)
    html = render(manifest, report_data, result, run_dir=Path(run_dir) if run_dir else None, title=title)
    write_atomic(out, lambda fh: fh.write(html))
    return out


def render(manifest: JSONObject, report_data: ReportData, result: Analysis, *, run_dir: Path | None = None,
           title: str | None = None) -> str:
    """The report's HTML text."""
    import jinja2

    from transferkit import __version__

    modality = model_modality(manifest)
    metrics = result.metrics
    seed = int(manifest.get("training", {}).get("seed", 0))
    context: dict[str, object] = {  # the template's variables
        "generator": GENERATOR,
        "version": __version__,
        "title": title or f"transferkit report: {_model_name(manifest)}",
        "model_line": _model_line(manifest),
        "data_line": report_data.description,
        "notes": list(report_data.notes),
        "configuration": _configuration(manifest, run_dir),
        "counts": _counts_table(report_data.class_counts, result.classes),
        "column_report": _column_report(manifest, metrics.get("columns")),
        "unknown_classes": metrics.get("unknown_classes", []),
        "ece": f"{result.calibration.ece:.3f}",
    }
    skipped, skipped_total = _skipped(manifest, report_data, result)
    context["skipped"], context["skipped_total"] = skipped, skipped_total
    context["tiles"] = _tiles(metrics, result, skipped_total)
    if metrics.get("n"):
        cm = metrics["confusion_matrix"]
        context["confusion_plot"] = plots.confusion_matrix(cm["labels"], cm["matrix"])
        context["per_class_plot"] = plots.per_class_scores(metrics["per_class"])
        cal = result.calibration
        context["reliability_plot"] = plots.reliability(cal.edges, cal.accuracy, cal.confidence, cal.counts, cal.ece)
    context["per_class"] = [
        {"name": name, "precision": f"{row['precision']:.3f}", "recall": f"{row['recall']:.3f}",
         "f1": f"{row['f1']:.3f}", "support": row["support"]}
        for name, row in (metrics.get("per_class") or {}).items()
    ]
    context["wrong"] = _wrong_examples(manifest, report_data.data, result, modality)
    context["embedding_plot"], context["embedding_note"] = _embedding(manifest, result, seed)
    context["training_plot"], context["training_note"] = _training(manifest, run_dir)
    context["minutes_plot"], context["minutes_note"] = _minutes(manifest)
    context["ranking"] = _ranking(manifest.get("ranking"))
    context["curve_plot"], context["curve_table"] = _curve(run_dir)
    context["shifts"] = _shifts(manifest)
    context["sections"] = [(sid, name) for sid, name, shown in (
        ("configuration", "configuration", True), ("data", "data", True),
        ("training", "training", bool(context["training_plot"] or context["training_note"])),
        ("minutes", "minutes", bool(context["minutes_plot"])),
        ("candidates", "candidates", bool(context["ranking"])),
        ("data-efficiency", "data efficiency", bool(context["curve_plot"] or context["curve_table"])),
        ("target-shift", "target shift", bool(context["shifts"])),
        ("confusion", "confusion matrix", True), ("per-class", "per class", True),
        ("calibration", "calibration", True), ("wrong", "confidently wrong", True),
        ("embeddings", "embedding map", True)) if shown]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent)),
                             autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    defaults = {"confusion_plot": None, "per_class_plot": None, "reliability_plot": None}
    return env.get_template("template.html.j2").render(**{**defaults, **context})


# -- sections -----------------------------------------------------------------------------------


def _model_name(manifest: JSONObject) -> str:
    if manifest.get("kind") == "tabular":
        return "table model"
    return str(manifest.get("backbone", {}).get("name", "model"))


def _model_line(manifest: JSONObject) -> str:
    labels = manifest.get("labels", [])
    head = manifest.get("head", {})
    if manifest.get("kind") == "tabular":
        cols = ", ".join(f"{c['name']} ({c['kind']})" for c in manifest.get("columns", []))
        return (f"table model over {len(labels)} classes: columns {cols}; {head.get('fusion', 'concat')} fusion + "
                f"{head.get('spec')} head")
    name = manifest.get("backbone", {}).get("name", "?")
    modality = manifest.get("backbone", {}).get("modality", "?")
    if manifest.get("strategy") == "finetune":
        ft = manifest.get("finetune", {})
        how = f"PEFT {ft['peft']['method']}" if ft.get("peft") else f"freeze '{ft.get('config', {}).get('freeze')}'"
        return (f"{modality} classifier over {len(labels)} classes: {name} fine-tuned ({how}, "
                f"{ft.get('epochs_run')} epochs) + {head.get('spec')} head")
    return f"{modality} classifier over {len(labels)} classes: frozen {name} + {head.get('spec')} head (probe)"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items() if not isinstance(v, dict | list)) or "—"
    if isinstance(value, list):
        return ", ".join(map(_fmt, value)) or "—"
    return "—" if value is None else str(value)


def _configuration(manifest: JSONObject, run_dir: Path | None) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if run_dir is not None:
        rows.append(("model folder", str(run_dir)))
    rows.append(("strategy", str(manifest.get("strategy", "probe")) + (" (table)" if manifest.get("kind") == "tabular"
                                                                         else "")))
    rows.append(("classes", f"{len(manifest.get('labels', []))}: " + _fmt(manifest.get("labels", [])[:30])
                 + (" …" if len(manifest.get("labels", [])) > 30 else "")))
    encoders = manifest.get("encoders") if manifest.get("kind") == "tabular" else {
        "backbone": manifest.get("backbone", {})}
    for kind, info in (encoders or {}).items():
        if not info:
            continue
        label = "backbone" if kind == "backbone" else f"{kind} encoder"
        weights = info.get("weights_source") or "pretrained"
        rows.append((label, f"{info.get('name')} ({info.get('modality')}, {info.get('num_features')} features, "
                            f"weights {weights}, sha256 {str(info.get('weights_id', ''))[:12]}…)"))
        rows.append((f"{label} preprocessing", _fmt(info.get("preprocess", {}))))
    head = manifest.get("head", {})
    rows.append(("head", f"{head.get('spec')}" + (f", {head['fusion']} fusion" if head.get("fusion") else "")
                 + (f" — chosen on validation: {_fmt(head['choice'])}" if head.get("choice") else "")))
    training = manifest.get("training", {})
    keep = ("seed", "n_train", "n_val", "precision", "class_weight", "class_weighted", "batch_size", "seconds")
    rows.append(("training", ", ".join(f"{k} {_fmt(training[k])}" for k in keep if k in training)))
    ft = manifest.get("finetune")
    if ft:
        cfg = ft.get("config", {})
        shown = ("epochs", "freeze", "lr", "layer_decay", "head_epochs", "label_smoothing", "l2sp", "augment",
                 "monitor")
        rows.append(("fine-tuning", ", ".join(f"{k} {_fmt(cfg[k])}" for k in shown if k in cfg)
                     + f"; ran {ft.get('epochs_run')} epochs, best epoch {ft.get('best_epoch')} "
                       f"({ft.get('monitor')} {_fmt(ft.get('best_score'))}), lr used {_fmt(ft.get('lr'))}"
                     + (" (found by the LR finder)" if ft.get("lr_found") else "")))
        if ft.get("peft"):
            rows.append(("PEFT", _fmt(ft["peft"])))
    data = manifest.get("data", {})
    if data:
        rows.append(("training data", f"{data.get('source')} — splits {_fmt(data.get('splits', {}))}"))
    if manifest.get("strategy_decision"):
        rows.append(("strategy decision", _fmt(manifest["strategy_decision"])))
    versions = manifest.get("versions", {})
    if versions:
        rows.append(("versions", _fmt(versions)))
    return rows


def _counts_table(counts: dict[str, dict[str, int]], classes: Sequence[str]) -> dict[str, object]:
    splits = list(counts)
    names = sorted(set(classes) | {c for v in counts.values() for c in v})
    rows = [{"name": c, "values": [counts[s].get(c, 0) for s in splits]} for c in names]
    return {"splits": splits, "rows": rows, "totals": [sum(counts[s].values()) for s in splits]}


def _skipped(manifest: JSONObject, report_data: ReportData, result: Analysis) -> tuple[list[dict[str, str]], int]:
    """Skipped inputs of training (from the bundle), of reading the data and of this evaluation."""
    seen: dict[str, dict[str, str]] = {}
    for where, found in (("at fit time", (manifest.get("metrics") or {}).get("skipped") or {}),
                         ("reading data", report_data.skipped), ("this evaluation", result.skipped)):
        if isinstance(found, dict):
            for item, reason in found.items():
                seen.setdefault(str(item), {"where": where, "input": str(item), "reason": str(reason)})
    rows = list(seen.values())
    listed = sum(1 for r in rows if r["where"] == "at fit time")
    counted = (manifest.get("training") or {}).get("skipped")
    if isinstance(counted, int) and counted > listed:  # fine-tuning records how many, not which
        rows.append({"where": "at fit time", "input": f"{counted - listed} more input(s)",
                     "reason": "unreadable, dropped while training (the bundle records their number, not their "
                               "names)"})
        return rows[:SKIPPED_SHOWN], len(rows) - 1 + counted - listed
    return rows[:SKIPPED_SHOWN], len(rows)


def _column_report(manifest: JSONObject, evaluated: Mapping[str, Mapping[str, object]] | None) -> list[dict[str, str]]:
    if manifest.get("kind") != "tabular":
        return []
    trained = manifest.get("training", {}).get("columns", {})
    rows = []
    for col in manifest.get("columns", []):
        name = str(col["name"])
        parts = []
        for where, rep in (("training", trained.get(name, {})), ("evaluated", (evaluated or {}).get(name, {}))):
            counts = ", ".join(f"{v} {k}" for k, v in rep.items() if k != "examples" and v)
            if counts:
                parts.append(f"{where}: {counts}")
        rows.append({"name": name, "kind": str(col.get("kind")), "met": "; ".join(parts) or "every cell usable"})
    return rows


def _tiles(metrics: Metrics, result: Analysis, skipped: int) -> list[dict[str, str]]:
    if not metrics.get("n"):
        return [{"name": "examples evaluated", "value": "0"}, {"name": "skipped inputs", "value": str(skipped)}]
    return [
        {"name": "accuracy", "value": f"{metrics['accuracy']:.1%}"},
        {"name": "balanced accuracy", "value": f"{metrics['balanced_accuracy']:.1%}"},
        {"name": "macro-F1", "value": f"{metrics['macro_f1']:.3f}"},
        {"name": "expected calibration error", "value": f"{result.calibration.ece:.3f}"},
        {"name": "examples evaluated", "value": str(metrics["n"])},
        {"name": "skipped inputs", "value": str(skipped)},
    ]


def _wrong_examples(manifest: JSONObject, data: LabelledData, result: Analysis, modality: str
                    ) -> list[dict[str, object]]:
    from transferkit.report.examples import describe

    out = []
    for row, confidence in result.confidently_wrong:
        item = data.items[int(result.ok_index[row])]
        shown = describe(item, modality, manifest.get("columns"))
        order = np.argsort(-result.proba[row])[:3]
        top = ", ".join(f"{result.classes[j]} {result.proba[row, j]:.2f}" for j in order)
        out.append({"image": None, "text": None, "cells": None, "note": None, **shown,
                    "true": result.true[row], "predicted": result.predicted[row], "confidence": f"{confidence:.2f}",
                    "top": f"top: {top}"})
    return out


def _embedding(manifest: JSONObject, result: Analysis, seed: int) -> tuple[str | None, str]:
    if len(result.features) < 3:
        return None, f"Too few examples ({len(result.features)}) to draw a map of the embeddings."
    index, coords, method = embedding_map(result.features, seed=seed)
    if manifest.get("kind") == "tabular":
        what = "fused column features"
    elif manifest.get("strategy") == "finetune":
        what = "fine-tuned network's outputs (logits)"
    else:
        what = f"{manifest.get('backbone', {}).get('name', 'backbone')} embeddings"
    labels = [result.true[i] for i in index]
    wrong = np.array([result.true[i] != result.predicted[i] for i in index], bool)
    classes = sorted(set(result.classes) | set(labels))
    note = (f"{method} of {len(index)} evaluated examples"
            + (f" (a seeded sample of {len(result.features)})" if len(index) < len(result.features) else "")
            + ("; umap-learn is not installed, so t-SNE was used" if method == "t-SNE" else "")
            + ". Classes that form separate islands are easy for the head; mixed regions are where errors live.")
    return plots.embedding(coords, labels, wrong, classes, method, what), note


def _training(manifest: JSONObject, run_dir: Path | None) -> tuple[str | None, str | None]:
    if manifest.get("strategy") != "finetune":
        return None, None
    if run_dir is None:
        return None, "Training curves are read from the run folder's logs/metrics.csv; no run folder was given."
    log = run_dir / LOG_FILE
    if not log.is_file():
        return None, f"No training log at {log}: the curves cannot be drawn."
    epochs = read_epoch_metrics(log)
    if not epochs:
        return None, f"{log} holds no per-epoch metric."
    ft = manifest.get("finetune", {})
    trainable = {int(k): int(v) for k, v in (ft.get("trainable_by_epoch") or {}).items()}  # 0-based epochs
    return plots.training_curves(epochs, ft.get("best_epoch"), trainable), None


def _minutes(manifest: JSONObject) -> tuple[str | None, str | None]:
    """Validation accuracy against wall time: fine-tuning per epoch, and under `--strategy auto`
    the probe it was weighed against (whichever of the two the bundle holds)."""
    from transferkit.selection.strategy import duration

    decision = manifest.get("strategy_decision") or {}
    compared = decision.get("compared") or {}
    timeline = decision.get("timeline") or (manifest.get("finetune") or {}).get("timeline") or []
    if not any(row[2] is not None for row in timeline):
        return None, None
    probe, offset, note = None, 0.0, None
    if compared and decision.get("probe_minutes") is not None:
        offset = float(decision["probe_minutes"])  # the probe is fitted first, fine-tuning after it
        probe = (offset, float(compared["val_accuracy_probe"]), str(compared.get("probe_backbone", "")))
        gain = 100 * (compared["val_accuracy_finetuned"] - compared["val_accuracy_probe"])
        minutes = decision.get("actual_minutes") or 0.0
        note = (f"The probe reached {100 * compared['val_accuracy_probe']:.1f}% in {duration(offset)}; "
                f"fine-tuning, {duration(minutes)} more, ended at {100 * compared['val_accuracy_finetuned']:.1f}% "
                f"({gain:+.1f} points). --strategy auto kept the {compared['kept']}.")
    plot = plots.minutes_bought(timeline, offset_minutes=offset, probe=probe, kept=compared.get("kept"))
    return plot, note



def read_epoch_metrics(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Lightning's CSV log → metric → [(epoch, mean value that epoch)], epochs counted from 1."""
    sums: dict[str, dict[int, list[float]]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for record in csv.DictReader(fh):
            try:
                epoch = int(float(record.get("epoch") or ""))
            except ValueError:
                continue
            for key, raw in record.items():
                if key in ("epoch", "step") or not raw or not (key.endswith("loss") or key.endswith("accuracy")):
                    continue
                try:
                    value = float(raw)
                except ValueError:
                    continue
                if np.isfinite(value):
                    sums.setdefault(key, {}).setdefault(epoch, []).append(value)
    return {key: [(e + 1, float(np.mean(v))) for e, v in sorted(per.items())] for key, per in sums.items()}


def _ranking(ranking: JSONObject | None) -> dict[str, object] | None:
    if ranking and ranking.get("rows"):  # `--backbone auto`'s selection on validation (selection.backbone)
        dev = any(c.get("dev_accuracy") is not None for c in ranking["rows"])  # --adapt-to: ranked by DEV
        key = "dev_accuracy" if dev else "val_accuracy"

        def pct(value: float | None) -> str:
            return "—" if value is None else f"{100 * value:.1f}%"

        header = ["candidate", "kind", "val accuracy", *(["DEV target acc."] if dev else []), "features", "seconds"]
        rows = [{"cells": [c["name"], c["kind"], pct(c.get("val_accuracy")),
                           *([pct(c.get("dev_accuracy"))] if dev else []), c.get("features"),
                           f"{c.get('seconds', 0):.1f}"],
                 "picked": c["name"] == ranking.get("winner")}
                for c in sorted(ranking["rows"], key=lambda c: -(c.get(key) if c.get(key) is not None else -1e9))]
        notes = [f"validation: {ranking.get('validation', '')}"]
        if ranking.get("criterion"):
            notes.append(f"ranked by {ranking['criterion']}")
        return {"header": header, "rows": rows, "reason": ranking.get("verdict", ""), "notes": notes}
    if not ranking or not ranking.get("candidates"):
        return None
    metrics = list(ranking.get("metrics", []))
    extra = sorted({m for c in ranking["candidates"] for m in c.get("scores", {})} - set(metrics))
    metrics += extra
    header = ["candidate", *metrics, "features", "seconds"]
    rows = []
    for c in ranking["candidates"]:
        scores = c.get("scores", {})
        cells = [c.get("name")] + [("—" if scores.get(m) is None else f"{scores[m]:.3f}") for m in metrics]
        cells += [c.get("num_features"), f"{(c.get('extract_seconds') or 0) + (c.get('score_seconds') or 0):.1f}"]
        rows.append({"cells": cells, "picked": c.get("name") == ranking.get("pick")})
    reason = f"Picked {ranking.get('pick')} by {ranking.get('picked_by') or ranking.get('selected_metric')}: " \
             f"{ranking.get('reason', '')}"
    return {"header": header, "rows": rows, "reason": reason, "notes": list(ranking.get("notes", []))}


def _shifts(manifest: JSONObject) -> list[dict[str, object]]:
    """A fit with --adapt-to: how far the target was from the training data, before and after the
    alignment the model carries (`adapt.shift`: numbers, verdict and map points kept in the bundle) — one
    section, or one per image, text or audio column of a table model."""
    adaptation = manifest.get("adaptation") or {}
    columns = adaptation.get("columns") or {}
    records = [(None, adaptation.get("shift")), *((f"column '{name}'", c.get("shift")) for name, c in columns.items())]
    return [_shift(record, title) for title, record in records if record]


def _shift(record: JSONObject, title: str | None) -> dict[str, object]:
    """One shift record's section: its verdict, the domain classifier's figures, per class, the map."""
    from transferkit.adapt.shift_diagnostic import ShiftDiagnostic, draw_map

    diag = ShiftDiagnostic.from_dict(record)
    after = diag.domain_accuracy_aligned is not None
    header = ["", "before alignment"] + ([f"after {diag.alignment or 'alignment'}"] if after else [])
    rows = [["inputs (training / target)", f"{diag.n_source} / {diag.n_target}"] + ([""] if after else []),
            ["domain classifier accuracy", f"{diag.domain_accuracy:.1%}"]
            + ([f"{diag.domain_accuracy_aligned:.1%}"] if after else []),
            ["proxy A-distance (0–2)", f"{diag.proxy_a_distance:.2f}"]
            + ([f"{diag.proxy_a_distance_aligned:.2f}"] if after else [])]
    per_header = ["class", "training inputs", "target nearest", "domain accuracy"] + (["after"] if after else [])
    per_rows = [[c.label, str(c.n_source), str(c.n_target), _pct(c.domain_accuracy)]
                + ([_pct(c.domain_accuracy_aligned)] if after else [])
                for c in sorted(diag.per_class, key=lambda c: -(c.domain_accuracy or 0.0))[:15]]
    plot = plots.png_uri(draw_map(record["map"], dpi=plots.DPI)) if record.get("map") else None
    return {"title": title, "verdict": diag.verdict(), "header": header, "rows": rows, "per_header": per_header,
            "per_rows": per_rows, "plot": plot}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _curve(run_dir: Path | None) -> tuple[str | None, dict[str, object] | None]:
    """The run's data-efficiency curve: its PNG as is, its CSV as a table (and a plot without PNG)."""
    if run_dir is None:
        return None, None
    png, table = run_dir / CURVE_PNG, None
    plot = plots.png_uri(png.read_bytes()) if png.is_file() else None
    path = run_dir / CURVE_CSV
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as fh:
            records = [r for r in csv.reader(fh) if r]
        if len(records) > 1:
            header, rows = records[0], records[1:]
            table = _curve_table(path) if tuple(header) == curves.COLUMNS else None
            if table is None:  # another layout: shown as it is
                table = {"header": header, "rows": [[_fmt_cell(v) for v in r] for r in rows]}
            if plot is None:
                plot = _plot_curve(header, rows)
    return plot, table


def _curve_table(path: Path) -> dict[str, object] | None:
    """`transferkit curve`'s points as one row per labels-per-class and one column per method:
    mean test accuracy over the seeds, with their range."""
    try:
        methods, shots, cells = curves.accuracy_grid(curves.read_curve(path))
    except (ValueError, KeyError):
        return None
    rows = []
    for shot in shots:
        row = [str(shot)]
        for method in methods:
            r = cells.get((method, shot))
            row.append("—" if r is None else f"{100 * r.mean:.1f}%" + (
                f" ({100 * r.min:.1f}–{100 * r.max:.1f})" if r.seeds > 1 else ""))
        rows.append(row)
    return {"header": ["labels per class", *methods], "rows": rows}


def _fmt_cell(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() else f"{number:.4g}"


def _plot_curve(header: list[str], rows: list[list[str]]) -> str | None:
    def column(j: int) -> list[float] | None:
        try:
            return [float(r[j]) for r in rows]
        except (ValueError, IndexError):
            return None

    x = column(0)
    series = {header[j]: ys for j in range(1, len(header)) if (ys := column(j)) is not None}
    if x is None or not series:
        return None
    return plots.curve(x, series, header[0])


# -- writing ------------------------------------------------------------------------------------


def _check_writable(out: Path) -> None:
    if out.is_dir():
        raise ConfigError(f"--out '{out}' is a folder; give the report's file name, e.g. {out / 'report.html'}")
    if out.exists() and not is_report(out):
        raise ConfigError(f"'{out}' exists and is not a transferkit report; refusing to overwrite it. "
                          "Choose another --out file")

