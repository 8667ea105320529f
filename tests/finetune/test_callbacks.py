"""The fine-tuning engine's small callbacks, on a stand-in trainer: what each records, and what a
checkpoint carries so that a resumed run continues the record (the killed-and-resumed run itself is
`test_checkpoint.py`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch

from transferkit.finetune.callbacks import EpochClock, EpochMetric, FreezeRecorder, LrInCheckpoint


def _trainer(epoch: int, sanity: bool = False, **metrics: float) -> Any:
    return SimpleNamespace(current_epoch=epoch, sanity_checking=sanity,
                           callback_metrics={k: torch.tensor(v) for k, v in metrics.items()})


def test_freeze_recorder_and_epoch_metric_record_per_epoch() -> None:
    counts: dict[int, int] = {}
    recorder = FreezeRecorder(counts)
    for epoch, n in ((0, 10), (1, 250)):
        recorder.on_train_epoch_start(_trainer(epoch), SimpleNamespace(trainable_parameter_count=lambda n=n: n))
    assert counts == {0: 10, 1: 250}

    mcc: dict[int, float] = {}
    metric = EpochMetric("train_mcc", mcc)
    metric.on_train_epoch_end(_trainer(0, train_mcc=0.5), None)  # type: ignore[arg-type]
    metric.on_train_epoch_end(_trainer(1), None)  # type: ignore[arg-type]  # not logged this epoch
    assert mcc == {0: 0.5}


def test_the_lr_travels_in_the_checkpoint() -> None:
    checkpoint: dict[str, Any] = {}
    LrInCheckpoint().on_save_checkpoint(_trainer(0), SimpleNamespace(lr=0.003), checkpoint)  # type: ignore[arg-type]
    assert checkpoint["transferkit_lr"] == 0.003


def test_the_epoch_clock_records_and_resumes_its_timeline() -> None:
    record: dict[int, tuple[float, float | None]] = {}
    clock = EpochClock(record)
    clock.on_validation_end(_trainer(0, val_accuracy=0.1), None)  # type: ignore[arg-type]  # before training: nothing
    clock.on_train_start(_trainer(0), None)  # type: ignore[arg-type]
    clock.on_validation_end(_trainer(0, sanity=True, val_accuracy=0.2), None)  # type: ignore[arg-type]
    assert record == {}  # the sanity check is no epoch
    clock.on_validation_end(_trainer(0, val_accuracy=0.75), None)  # type: ignore[arg-type]
    clock.on_train_epoch_end(_trainer(0), None)  # type: ignore[arg-type]  # keeps the validated entry
    clock.on_train_epoch_end(_trainer(1), None)  # type: ignore[arg-type]  # no validation: accuracy None
    assert sorted(record) == [0, 1] and record[0][1] == 0.75 and record[1][1] is None
    assert 0 <= record[0][0] <= record[1][0]

    checkpoint: dict[str, Any] = {}
    clock.on_save_checkpoint(_trainer(1), None, checkpoint)  # type: ignore[arg-type]
    assert [e for e, _, _ in checkpoint["transferkit_timeline"]] == [0, 1]
    checkpoint["transferkit_seconds"] = 100.0  # as if the first run had trained 100 s

    resumed: dict[int, tuple[float, float | None]] = {}
    again = EpochClock(resumed)
    again.on_load_checkpoint(_trainer(2), None, checkpoint)  # type: ignore[arg-type]
    assert resumed == record
    again.on_train_start(_trainer(2), None)  # type: ignore[arg-type]
    again.on_validation_end(_trainer(2, val_accuracy=0.5), None)  # type: ignore[arg-type]
    assert resumed[2][0] >= 100.0 and resumed[2][1] == 0.5  # the clock carries on from the checkpoint's seconds
