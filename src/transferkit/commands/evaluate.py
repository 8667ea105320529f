"""`transferkit evaluate`: score a saved model on new labelled data, read the way it was trained."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from transferkit.commands._console import console, print_metrics, print_skipped
from transferkit.commands._flags import (
    AdaptBatch,
    AsJson,
    CacheDir,
    Encoding,
    Engine,
    LabelColumn,
    Model,
    NoCache,
    PathColumn,
    TextColumn,
    cache_arg,
    with_batch_adaptation,
)
from transferkit.params import ADAPT_BATCH, AS_JSON, CACHE_DIR, ENCODING, ENGINE, LABEL_COLUMN, NO_CACHE, PATH_COLUMN

if TYPE_CHECKING:
    from transferkit.metrics import Metrics


def register(app: typer.Typer) -> None:
    app.command(name="evaluate")(evaluate)


def evaluate(
    model: Model,
    data: Annotated[Path, typer.Argument(help="Labelled data in the same layout as for fit.")],
    path_column: PathColumn = PATH_COLUMN.default,
    label_column: LabelColumn = LABEL_COLUMN.default,
    text_column: TextColumn = None,
    encoding: Encoding = ENCODING.default,
    engine: Engine = ENGINE.default,
    report: Annotated[bool, typer.Option("--report", help="Also write MODEL/report-<DATA name>.html: the same "
                                                          "report as `transferkit report`, for this data.")] = False,
    as_json: AsJson = AS_JSON.default,
    cache_dir: CacheDir = CACHE_DIR.default,
    no_cache: NoCache = NO_CACHE.default,
    adapt_batch: AdaptBatch = ADAPT_BATCH.default,
) -> None:
    """Score a trained model on new labelled data."""
    run_evaluate(model, data, path_column=text_column or path_column, label_column=label_column, as_json=as_json,
                 cache_dir=cache_arg(cache_dir, no_cache), encoding=encoding, report=report, engine=engine,
                 adapt_batch=adapt_batch)


def run_evaluate(model: Path, data: Path, *, path_column: str = PATH_COLUMN.default,
                 label_column: str = LABEL_COLUMN.default, as_json: bool = AS_JSON.default,
                 cache_dir: str | Path | bool | None = CACHE_DIR.default, encoding: str | None = ENCODING.default,
                 engine: str = ENGINE.default, report: bool = False, adapt_batch: bool = ADAPT_BATCH.default,
                 out: Console = console) -> Metrics:
    from transferkit.data import load_labelled
    from transferkit.errors import DataError
    from transferkit.estimators.load import load

    clf = load(model, cache_dir=cache_dir, engine=engine, progress=not as_json)
    if adapt_batch:
        with_batch_adaptation(clf)
    saved = clf.manifest_.get("data", {})
    layout = clf.manifest_.get("columns", [])
    dataset, messages = load_labelled(
        data, modality=clf.modality_,
        path_column=path_column if path_column != "path" else str(saved.get("path_column") or "path"),
        label_column=label_column if label_column != "label" else str(saved.get("label_column") or "label"),
        columns=[c["name"] for c in layout],
        path_columns=[c["name"] for c in layout if c["kind"] in ("image", "audio")], encoding=encoding,
        group_column=None)
    metrics = clf.evaluate(dataset)
    metrics["skipped"] = {**dataset.skipped, **metrics.get("skipped", {})}
    if report and metrics.get("n"):
        from transferkit.report import write_report
        from transferkit.report.labelled import from_labelled

        target = Path(model) / f"report-{Path(data).stem or 'data'}.html"
        written = write_report(clf, from_labelled(clf.manifest_, dataset, description=f"{data} (all {len(dataset)} "
                                                  "examples)"), target, run_dir=model)
        metrics["report"] = str(written)
    if as_json:
        print(json.dumps(metrics, indent=2))
    else:
        for message in messages:
            out.print(f"[yellow]{message}[/]", highlight=False)
        print_metrics(metrics, out, title=f"{data}")
        if metrics.get("unknown_classes"):
            out.print(f"[yellow]classes the model never saw:[/] {', '.join(metrics['unknown_classes'])}")
        print_skipped(metrics["skipped"], out)
        if metrics.get("report"):
            out.print(f"[green]report[/] {metrics['report']}")
    if not metrics.get("n"):
        raise DataError(f"{data}: none of the {len(dataset)} input(s) could be read, so nothing was scored"
                        + (f"; first error: {next(iter(metrics['skipped'].values()))}" if metrics["skipped"] else ""))
    return metrics
