"""Kill-and-resume ends with the same weights as an uninterrupted run (CPU, same seed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

from transferkit.errors import ConfigError
from transferkit.finetune.checkpoint import read_run


class Killed(RuntimeError):
    pass


class KillAt(pl.Callback):
    """Dies at the start of `epoch`, after the previous epoch's checkpoints were written."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, module: Any) -> None:
        if trainer.current_epoch == self.epoch:
            raise Killed("simulated crash")


def test_kill_and_resume_matches_uninterrupted(xy: Any, tiny: Any, tmp_path: Path) -> None:
    X, y = xy
    val = (X[::4], y[::4])
    settings = {"freeze": "gradual", "epochs": 3, "augment": True, "head": "dense:16:relu, dropout:0.3, dense:N"}
    straight = tiny(**settings, run_dir=tmp_path / "a").fit(X, y, X_val=val[0], y_val=val[1])
    with pytest.raises(Killed):
        tiny(**settings, run_dir=tmp_path / "b").fit(X, y, X_val=val[0], y_val=val[1], callbacks=[KillAt(2)])
    assert (tmp_path / "b" / "checkpoints" / "last.ckpt").is_file()
    resumed = tiny(**settings, run_dir=tmp_path / "b", resume=True).fit(X, y, X_val=val[0], y_val=val[1])
    a = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert resumed.fit_report_.trainable_by_epoch[2] == straight.fit_report_.trainable_by_epoch[2]
    # the freeze schedule's state travelled in the checkpoint
    assert any("FreezeSchedule" in k for k in b["callbacks"])
    # the logs of the epochs before the crash are still there (issue 12, item 9): the same epochs as uninterrupted
    import csv

    def epochs(run: Path) -> list[int]:
        with open(run / "logs" / "metrics.csv", newline="") as fh:
            return sorted({int(float(r["epoch"])) for r in csv.DictReader(fh) if r.get("train_loss")})

    assert epochs(tmp_path / "b") == epochs(tmp_path / "a") == [0, 1, 2]


def test_resume_refuses_what_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    with pytest.raises(ConfigError, match="not a transferkit fine-tuning run"):
        read_run(tmp_path / "photos")
    with pytest.raises(ConfigError, match="no such folder"):
        read_run(tmp_path / "missing")
