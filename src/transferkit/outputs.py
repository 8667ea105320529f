"""Folders transferkit writes are recognised, so that its outputs never become training data.

A bundle (`transferkit.json`), a fine-tuning run (`run.json`) and a learning curve (`curve.json`)
are recognised by the format each of those files declares; any other folder transferkit writes
(a feature cache) carries `MARKER`, a small JSON file of its own. Data discovery skips every such
folder wherever it sits in a data folder (and says so, like any skipped input).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: the marker file of a folder transferkit wrote that has no manifest of its own
MARKER = ".transferkit-output"
MARKER_FORMAT = "transferkit.output"
#: the files that declare a transferkit folder, each with `"format": "transferkit.…"`
_DECLARING = ("transferkit.json", "run.json", "curve.json", MARKER)


def mark_output(folder: str | Path, what: str) -> None:
    """Leave `MARKER` in `folder` (created if needed), saying what transferkit writes there."""
    p = Path(folder)
    p.mkdir(parents=True, exist_ok=True)
    marker = p / MARKER
    if not marker.exists():
        marker.write_text(json.dumps({"format": MARKER_FORMAT, "what": what}) + "\n", encoding="utf-8")


def output_kind(folder: str | Path) -> str | None:
    """The file that declares `folder` an output of transferkit (e.g. 'curve.json'), or None."""
    p = Path(folder)
    for name in _DECLARING:
        path = p / name
        try:
            if not path.is_file() or path.stat().st_size > 1 << 22:
                continue
            declared = json.loads(path.read_text(encoding="utf-8")).get("format", "")
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            continue
        if isinstance(declared, str) and declared.startswith("transferkit."):
            return name
    return None


def check_out_outside(out: str | Path, data: str | Path, flag: str = "--out") -> None:
    """Refuse an output folder inside the data folder it is made from: the next run would find it there."""
    from transferkit.errors import ConfigError

    source = Path(data)
    if not source.is_dir():
        return
    out_real, data_real = Path(out).resolve(), source.resolve()
    if out_real == data_real or data_real in out_real.parents:
        raise ConfigError(f"{flag} '{out}' is inside the data folder '{data}' it reads: its files would sit among "
                          "the training data; choose a folder outside it (e.g. runs/)")


def write_atomic(path: Path, write: Callable[[Any], object], binary: bool = False) -> None:
    """`write(fh)` into a temporary file in `path`'s folder (created if needed), synced, then renamed over
    `path`: a killed run leaves the previous file whole, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
