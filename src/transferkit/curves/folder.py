"""Where a curve is written: the folder rules (a new or empty folder, a curve transferkit wrote, or a
model folder), the marker that claims a folder before the first point, and curve.csv read back as
the frame `curve` returned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from transferkit.errors import BundleError
from transferkit.jsontypes import JSONObject
from transferkit.outputs import write_atomic

if TYPE_CHECKING:
    import pandas as pd

CURVE_CSV, CURVE_PNG, CURVE_JSON = "curve.csv", "curve.png", "curve.json"
CURVE_FILES = (CURVE_CSV, CURVE_PNG, CURVE_JSON)
CURVE_FORMAT = "transferkit.curve"
CURVE_FORMAT_VERSION = 1


def check_curve_folder(folder: str | Path, *, overwrite: bool = False) -> None:
    """Refuse, before any work, a folder the curve files may not be written into.

    Allowed: a new or empty folder; a folder holding only a curve transferkit wrote (with
    `overwrite`); a model folder made by `transferkit fit` (the curve files are then recorded in
    its manifest, so that its report shows them and `fit --overwrite` replaces them). Anything
    else — a user's folder — is refused, naming what is in it.
    """
    from transferkit.bundle import is_bundle

    p = Path(folder)
    if p.exists() and not p.is_dir():
        raise BundleError(f"--out '{p}' is a file; give a folder for curve.png and curve.csv")
    if not p.is_dir():
        return
    entries = sorted(e.name for e in p.iterdir())
    if not entries:
        return
    ours = [name for name in CURVE_FILES if (p / name).exists()]
    if is_bundle(p):
        if ours and not overwrite and _curve_marker(p) is not None:
            raise BundleError(f"--out '{p}' already holds a curve of this model; pass --overwrite to replace it")
        if ours and _curve_marker(p) is None:
            raise BundleError(f"--out '{p}' holds '{ours[0]}', which transferkit did not write there; move it, or "
                              "choose another folder")
        return
    if _curve_marker(p) is None:
        raise BundleError(f"--out '{p}' is a non-empty folder that transferkit did not write (it holds "
                          f"'{entries[0]}'); refusing to write into it. Choose a new or empty folder, or a model "
                          "folder made by `transferkit fit` (its report then shows the curve)")
    foreign = [name for name in entries if name not in CURVE_FILES and not _is_temporary(name)]
    if foreign:
        raise BundleError(f"--out '{p}' holds a curve but also '{foreign[0]}', which transferkit did not write; "
                          "move it out, or choose another folder")
    if not overwrite:
        raise BundleError(f"--out '{p}' already holds a curve; pass --overwrite to replace it, or choose another "
                          "folder")


def mark_curve_folder(folder: str | Path) -> None:
    """Claim `folder` for the curve before its first point is written (a killed run then leaves a folder
    that `check_curve_folder` recognises as a curve): curve.json with the marker, or, in a model
    folder, the curve files recorded in the bundle's manifest."""
    from transferkit.bundle import add_files, is_bundle

    p = Path(folder)
    p.mkdir(parents=True, exist_ok=True)
    if is_bundle(p):
        add_files(p, CURVE_FILES)
    if _curve_marker(p) is None:
        record = {"format": CURVE_FORMAT, "format_version": CURVE_FORMAT_VERSION, "files": list(CURVE_FILES),
                  "status": "running"}
        write_atomic(p / CURVE_JSON, lambda fh: fh.write(json.dumps(record, indent=2) + "\n"))


def _is_temporary(name: str) -> bool:
    return name.startswith(".curve.") and name.endswith(".tmp")


def _curve_marker(folder: Path) -> JSONObject | None:
    path = folder / CURVE_JSON
    if not path.is_file() or path.is_symlink():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) and info.get("format") == CURVE_FORMAT else None


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """`frame` as CSV, atomically (a killed run leaves the previous file whole)."""
    target = Path(path)
    write_atomic(target, lambda fh: frame.to_csv(fh, index=False))
    return target


def read_curve(path: str | Path) -> pd.DataFrame:
    """A `curve.csv` back as the frame `curve` returned (same columns, types and values)."""
    import pandas as pd

    frame = pd.read_csv(path, dtype={"method": str, "backbone": str, "shots": str}, float_precision="round_trip",
                        keep_default_na=False)
    return frame.astype({"seed": "int64", "n_train": "int64"})
