"""`transferkit predict`: the label and its probability for each input, from any bundle."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from transferkit.commands._console import console, print_skipped
from transferkit.commands._flags import (
    AdaptBatch,
    AsJson,
    CacheDir,
    Encoding,
    Engine,
    Model,
    NoCache,
    TextColumn,
    cache_arg,
    with_batch_adaptation,
)
from transferkit.params import ADAPT_BATCH, AS_JSON, CACHE_DIR, ENCODING, ENGINE, NO_CACHE

if TYPE_CHECKING:
    from transferkit.backbones.contract import InputNotes
    from transferkit.estimators.transfer_estimator import TransferEstimator
    from transferkit.metrics import PredictionRow


def register(app: typer.Typer) -> None:
    app.command(name="predict")(predict)


def predict(
    model: Model,
    inputs: Annotated[list[str] | None, typer.Argument(
        help="Files or folders to classify; for a text model also sentences, text files (a line each) or "
             "tables; for a table model, tables of rows.")] = None,
    row: Annotated[list[str] | None, typer.Option(
        "--row", help="Table models: one row as JSON, e.g. '{\"title\": \"…\", \"price\": 3}' (repeatable).")] = None,
    text_column: TextColumn = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Show the K most likely labels.")] = 1,
    encoding: Encoding = ENCODING.default,
    engine: Engine = ENGINE.default,
    as_json: AsJson = AS_JSON.default,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")] = False,
    cache_dir: CacheDir = CACHE_DIR.default,
    no_cache: NoCache = NO_CACHE.default,
    adapt_batch: AdaptBatch = ADAPT_BATCH.default,
) -> None:
    """Print the predicted label and its probability for each input."""
    run_predict(model, inputs or [], top_k=top_k, fmt="json" if as_json else "csv" if as_csv else "table",
                cache_dir=cache_arg(cache_dir, no_cache), rows=row or [], text_column=text_column, encoding=encoding,
                engine=engine, adapt_batch=adapt_batch)


def run_predict(model: Path, inputs: Sequence[str], *, top_k: int = 1, fmt: str = "table",
                cache_dir: str | Path | bool | None = CACHE_DIR.default,
                rows: Sequence[str] = (), text_column: str | None = None, encoding: str | None = ENCODING.default,
                engine: str = ENGINE.default, adapt_batch: bool = ADAPT_BATCH.default,
                out: Console = console) -> list[PredictionRow]:
    from transferkit.data.inputs import read_prediction_inputs
    from transferkit.engines.exported import current_export, is_export
    from transferkit.errors import ConfigError, DataError

    notes: list[str] = []
    if adapt_batch and (is_export(model) or engine == "onnx"):
        raise ConfigError(f"--adapt-batch standardises features with the batch's statistics, which an exported graph "
                          f"cannot do: predict with the bundle ({'its source folder' if is_export(model) else model}, "
                          "--engine torch)")
    if engine in ("auto", "onnx", "onnxruntime") and not is_export(model) and not adapt_batch:
        export, stale = current_export(model)
        if export is not None:  # the export `transferkit export RUN` wrote, of these weights, intact: no PyTorch
            if engine == "auto":
                notes.append(f"predicted from the export {export} (ONNX Runtime; its files checked against the "
                             "sha256 recorded when it was exported); --engine torch runs the bundle itself")
            model = export
        elif stale is not None:
            if engine == "onnx":  # asked for the export, and it cannot be trusted: never a silent substitute
                from transferkit.engines.exported import ExportIntegrityError

                raise ExportIntegrityError(f"--engine onnx: {stale}")
            notes.append(f"{stale}; predicted with the bundle instead")
    if is_export(model):
        return _predict_exported(model, inputs, top_k=top_k, fmt=fmt, out=out, notes=notes)
    if engine == "onnx":
        raise DataError(f"--engine onnx runs an exported model, and {model} has none: "
                        f"transferkit export {model}  (then predict {model} --engine onnx)")
    from transferkit.estimators.load import load

    clf = load(model, cache_dir=cache_dir, engine=engine, progress=fmt == "table")
    if adapt_batch:
        with_batch_adaptation(clf)
    saved = clf.manifest_.get("data", {})
    modality = clf.modality_
    layout = clf.manifest_.get("columns", []) if modality == "table" else []  # a table model's column layout
    columns = [c["name"] for c in layout]
    path_columns = [c["name"] for c in layout if c["kind"] in ("image", "audio")]
    got = read_prediction_inputs(modality, inputs, rows=rows, columns=columns, path_columns=path_columns,
                                 text_column=text_column or str(saved.get("path_column") or "text"), encoding=encoding)
    feats = clf.features(got.items)
    notes += list(got.notes) + _notes_after(clf, got.items)
    if adapt_batch:
        notes.append(f"--adapt-batch: the {len(feats.values)} readable inputs were standardised with their own "
                     "feature statistics before the head read them")
    proba = clf.proba_from_features(feats.values) if len(feats.values) else np.zeros((0, len(clf.classes_)))
    row_of = np.cumsum(feats.ok) - 1
    errors = {i: feats.failed.get(i) for i in range(len(got.items)) if not feats.ok[i]}
    return _results(got.names, [proba[row_of[i]] for i in range(len(got.items)) if feats.ok[i]], errors,
                    list(clf.classes_), top_k=top_k, fmt=fmt, notes=notes, out=out)


def _results(names: Sequence[str], proba: Sequence[np.ndarray], errors: Mapping[int, str | None],
             classes: Sequence[str], *,
             top_k: int, fmt: str, notes: Sequence[str], out: Console) -> list[PredictionRow]:
    """One row per input (`proba`: those of the inputs not in `errors`, in order), printed with the
    notes; exit 2 (`DataError`) when no input could be read."""
    from transferkit.errors import DataError
    from transferkit.metrics import prediction_row

    readable = iter(proba)
    results: list[PredictionRow] = [
        {"input": name, "label": None, "probability": None, "error": errors[i]} if i in errors
        else prediction_row(name, next(readable), classes, top_k) for i, name in enumerate(names)]
    _print_results(results, fmt, max(1, min(top_k, len(classes))), out)
    for note in notes:  # truncated texts, empty texts, missing table cells, the export used: said, never silent
        (out.print(f"[yellow]note:[/] {note}", highlight=False) if fmt == "table"
         else print(f"note: {note}", file=sys.stderr))
    if results and all(r["label"] is None for r in results):
        raise DataError(f"none of the {len(results)} input(s) could be read; first error: {results[0]['error']}")
    return results


def _predict_exported(folder: Path, inputs: Sequence[str], *, top_k: int, fmt: str, out: Console,
                      notes: Sequence[str] = ()) -> list[PredictionRow]:
    """An export folder (`transferkit export`): ONNX Runtime on numpy, PyTorch never imported."""
    from transferkit.data.images import IMAGE_EXTENSIONS
    from transferkit.data.inputs import expand_inputs
    from transferkit.engines.exported import ExportedModel
    from transferkit.errors import DataError, InputError

    exported = ExportedModel(folder)
    paths = expand_inputs(inputs, IMAGE_EXTENSIONS)
    if not paths:
        raise DataError("give image files or folders to classify")
    from transferkit.data.images import image_array

    arrays: list[np.ndarray] = []
    errors: dict[int, str] = {}
    for i, path in enumerate(paths):  # read one by one, so that one bad file is reported, not fatal
        try:
            arrays.append(image_array(path, exported.preprocess))
        except (InputError, OSError) as exc:
            errors[i] = str(exc)
    proba = list(exported.probabilities(np.stack(arrays))) if arrays else []
    return _results(paths, proba, errors, [str(c) for c in exported.labels], top_k=top_k, fmt=fmt, notes=notes,
                    out=out)


def _notes_after(clf: TransferEstimator, items: Sequence[object]) -> list[str]:
    """Notes after extraction: texts cut at the model's window, table cells missing or unreadable."""
    from transferkit.commands._console import column_notes

    if clf.modality_ == "table":
        return column_notes(getattr(clf, "last_columns_", {}), "")
    notes: InputNotes = {}
    for member in getattr(clf, "members_", [clf]):  # an ensemble: every member's backbone
        notes.update(member.backbone_.input_notes(items))
    if "long_text" not in notes:
        return []
    n = notes.get("truncated_texts", 0)
    if notes["long_text"] == "chunk":
        return [f"long texts pooled over {notes['max_tokens']}-token chunks"
                + (f"; {n} exceeded the chunk budget and were cut" if n else "")]
    return [f"{n} text(s) longer than {notes['max_tokens']} tokens were truncated (the model only read their "
            "beginning)"] if n else []


def _print_results(results: list[PredictionRow], fmt: str, k: int, out: Console) -> None:
    if fmt == "json":
        print(json.dumps(results, indent=2))
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["input", "label", "probability", "error"])
        for r in results:
            writer.writerow([r["input"], r["label"] or "", "" if r["probability"] is None
                             else f"{r['probability']:.6f}", r.get("error") or ""])
        print(buf.getvalue(), end="")
        return
    table = Table()
    table.add_column("input", overflow="fold")
    table.add_column("label")
    table.add_column("probability", justify="right")
    for r in results:
        if r["label"] is None:
            table.add_row(r["input"], "[red]unreadable[/]", "")
        elif k > 1:
            table.add_row(r["input"], "\n".join(t["label"] for t in r["top"]),
                          "\n".join(f"{t['probability']:.3f}" for t in r["top"]))
        else:
            table.add_row(r["input"], r["label"], f"{r['probability']:.3f}")
    out.print(table)
    print_skipped({r["input"]: r.get("error") or "unreadable" for r in results if r["label"] is None}, out)

