"""`save_curve`: curve.csv, curve.png and curve.json (the settings, notes and verdicts) written
atomically into a folder `check_curve_folder` has allowed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from transferkit.curves.folder import (
    CURVE_CSV,
    CURVE_FILES,
    CURVE_FORMAT,
    CURVE_FORMAT_VERSION,
    CURVE_JSON,
    CURVE_PNG,
    write_csv,
)
from transferkit.curves.plot import plot_curve
from transferkit.curves.verdicts import summarize
from transferkit.outputs import write_atomic

if TYPE_CHECKING:
    import pandas as pd


def save_curve(frame: pd.DataFrame, folder: str | Path, *, title: str | None = None) -> dict[str, Path]:
    """Write curve.csv, curve.png and curve.json into `folder` (checked with `check_curve_folder` first);
    in a model folder, the bundle's manifest records them."""
    from transferkit.bundle import add_files, is_bundle

    p = Path(folder)
    p.mkdir(parents=True, exist_ok=True)
    written = {"csv": write_csv(frame, p / CURVE_CSV), "png": plot_curve(frame, p / CURVE_PNG, title=title)}
    verdicts = summarize(frame)
    record = {"format": CURVE_FORMAT, "format_version": CURVE_FORMAT_VERSION, "files": list(CURVE_FILES),
              "status": "interrupted" if frame.attrs.get("interrupted") else "complete",
              **{k: v for k, v in frame.attrs.items()},
              "summary": [{"method": v.method, "scratch_all": v.scratch_all,
                           "matches_scratch_all_at": v.matches_scratch_all_at, "stops_paying_at": v.stops_paying_at,
                           "sentences": list(v.sentences)} for v in verdicts]}
    write_atomic(p / CURVE_JSON, lambda fh: fh.write(json.dumps(record, indent=2, default=str) + "\n"))
    written["json"] = p / CURVE_JSON
    if is_bundle(p):
        add_files(p, CURVE_FILES)
    return written
