"""The trainer's own behaviour: precision names, out-of-memory advice, and the metrics log a resumed run
puts back together (the killed-and-resumed run end to end: `test_checkpoint.py`)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from transferkit.finetune.trainer import OutOfMemory, _append_log, fit_guarded, lightning_precision, oom_message


def test_out_of_memory_suggests_a_batch_size() -> None:
    class Boom:
        def fit(self, *a: Any, **k: Any) -> None:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(OutOfMemory, match="--batch-size 16"):
        fit_guarded(Boom(), None, None, None, 32)
    assert "--batch-size 4" in oom_message(8)


def test_precision_names_map_to_lightnings() -> None:
    assert [lightning_precision(p, "cpu") for p in ("bf16", "fp16", "fp32")] == ["bf16-mixed", "16-mixed", "32-true"]
    assert lightning_precision("auto", "cpu") in ("bf16-mixed", "32-true")


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)


def test_a_resumed_runs_log_keeps_the_epochs_before_it(tmp_path: Path) -> None:
    """Lightning's CSV logger rewrites the file on resume: the rows of the epochs before the resumed one
    come back, the ones the resumed run redid are its own, and a column only one run logged is kept."""
    log = tmp_path / "metrics.csv"
    earlier = [{"epoch": "0", "train_loss": "1.0"}, {"epoch": "1", "train_loss": "0.8"},
               {"epoch": "2", "train_loss": "0.7"}]  # epoch 2 was cut short by the crash
    _write(log, [{"epoch": "2", "train_loss": "0.6", "val_loss": "0.5"},
                 {"epoch": "3", "train_loss": "0.4", "val_loss": "0.4"}])
    _append_log(log, earlier)
    with open(log, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["epoch"], r["train_loss"]) for r in rows] == [("0", "1.0"), ("1", "0.8"), ("2", "0.6"), ("3", "0.4")]
    assert rows[0]["val_loss"] == "" and rows[3]["val_loss"] == "0.4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]  # the temporary file went
