"""An HTML report of a trained model: what it was trained on, how well it does, where it fails.

    transferkit report runs/photos            # the run's own test split → runs/photos/report.html
    transferkit report runs/photos new_data/  # the same report on other labelled data

From Python: `write_report(transferkit.load(run), data, "report.html", run_dir=run)`, or
`report_run(run)` for what the command does.
"""

from __future__ import annotations

import os
from pathlib import Path

from transferkit.report.build import write_report
from transferkit.report.labelled import ReportData, given_data

__all__ = ["ReportData", "default_report_path", "report_run", "write_report"]


def default_report_path(run: str | Path) -> Path:
    return Path(run) / "report.html"


def report_run(
    run: str | Path,
    data: str | Path | None = None,
    *,
    out: str | Path | None = None,
    path_column: str | None = None,
    label_column: str | None = None,
    title: str | None = None,
    cache_dir: str | os.PathLike[str] | bool | None = None,
    progress: bool = False,
) -> Path:
    """Load the bundle at `run`, evaluate it on `data` (default: the run's own test split,
    re-derived) and write the report (default `run/report.html`). Returns the path written."""
    from transferkit.bundle import read_manifest
    from transferkit.estimators.load import load
    from transferkit.report import labelled as report_data

    manifest = read_manifest(run)  # a clear error for a folder that is not a bundle, before any loading
    chosen = (given_data(manifest, data, path_column=path_column, label_column=label_column) if data is not None
              else report_data.test_split(manifest, run))
    model = load(Path(run), cache_dir=cache_dir, progress=progress)
    return write_report(model, chosen, out or default_report_path(run), run_dir=run, title=title)
