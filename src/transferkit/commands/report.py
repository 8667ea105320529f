"""`transferkit report RUN [DATA]`: the HTML report of a trained model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from transferkit.commands._flags import CacheDir, NoCache
from transferkit.params import CACHE_DIR, NO_CACHE


def register(app: typer.Typer) -> None:
    """Add the `report` command to `app`."""
    app.command(name="report")(report)


def report(
    run: Annotated[Path, typer.Argument(help="A folder made by `transferkit fit`.")],
    data: Annotated[Path | None, typer.Argument(
        help="Labelled data to report on, in the same layout as for fit. Default: the run's own test split, "
             "re-derived from what the bundle recorded.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="The HTML file to write "
                                                                 "(default RUN/report.html).")] = None,
    title: Annotated[str | None, typer.Option(help="The report's title.")] = None,
    path_column: Annotated[str | None, typer.Option(
        help="DATA's column of input paths (or texts); default: the one the model was trained with.")] = None,
    label_column: Annotated[str | None, typer.Option(
        help="DATA's column of labels; default: the one the model was trained with.")] = None,
    cache_dir: CacheDir = CACHE_DIR.default,
    no_cache: NoCache = NO_CACHE.default,
) -> None:
    """Write a self-contained HTML report of a trained model on its test split or on DATA.

    It shows the data, training curves, confusion matrix, per-class scores, calibration, the most
    confidently wrong examples and a map of the embeddings.
    """
    from transferkit.commands._console import console
    from transferkit.outputs import check_out_outside
    from transferkit.report import report_run

    if out is not None and data is not None:  # the report among the data would be read as an input next time
        check_out_outside(out.parent, data)
    with console.status("evaluating the model and drawing the report…"):
        written = report_run(run, data, out=out, title=title, path_column=path_column, label_column=label_column,
                             cache_dir=False if no_cache else cache_dir)
    console.print(f"[green]report written[/] {written}  (one self-contained HTML file; open it in a browser)")
