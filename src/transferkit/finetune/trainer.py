"""Building and running Lightning's Trainer: devices, precision, checkpoints, logs, early stopping.

`train_module` is the one entry: it builds the Trainer for a `FinetuneModule` + data module, runs
the LR finder when asked (`lr="auto"`), resumes from `last.ckpt` when asked, trains, and reloads
the best checkpoint (by the monitored validation metric). The estimator facade
(`transferkit.estimators.FinetunedClassifier`) decides *what* is trained; this decides *how* it runs.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import Logger
    from lightning.pytorch.strategies import Strategy

    from transferkit.finetune.datamodule import FinetuneData
    from transferkit.finetune.module import FinetuneModule

import numpy as np
import torch

from transferkit.errors import ConfigError, TransferkitError
from transferkit.finetune.checkpoint import AtomicCheckpointIO
from transferkit.finetune.config import FinetuneConfig


class OutOfMemory(TransferkitError):
    """Training ran out of accelerator memory at the chosen batch size."""


@dataclass
class TrainOutcome:
    """What a training run did: the LR it used, epochs run, the best checkpoint and its score."""

    lr: float = 0.0
    lr_found: bool = False
    epochs_run: int = 0
    world_size: int = 1
    best_epoch: int | None = None
    best_score: float | None = None
    checkpoint: str | None = None
    trainable_by_epoch: dict[int, int] = field(default_factory=dict)
    #: epoch (from 0) → (wall seconds of training at its end, validation accuracy then or None)
    timeline: dict[int, tuple[float, float | None]] = field(default_factory=dict)
    #: the Lightning Trainer that ran (its optimizers, loggers, callbacks), for inspection
    trainer: pl.Trainer | None = None


def lightning_precision(precision: str, accelerator: str) -> str:
    """Our precision names → Lightning's ('auto': bf16 where the hardware runs it natively)."""
    from transferkit.runtime import cpu_supports_bf16

    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if precision == "auto":
        if gpu:
            return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        return "bf16-mixed" if cpu_supports_bf16() else "32-true"
    return {"bf16": "bf16-mixed", "fp16": "16-mixed", "fp32": "32-true"}[precision]


def train_module(
    module: FinetuneModule,
    dm: FinetuneData,
    cfg: FinetuneConfig,
    *,
    root: Path,
    has_val: bool,
    precision: str,
    batch_size: int,
    progress: bool,
    resume: bool,
    callbacks: Sequence[pl.Callback] = (),
) -> TrainOutcome:
    """Train `module` on `dm` with checkpoints and logs under `root`; load the best weights back."""
    outcome = TrainOutcome()

    def build() -> tuple[pl.Trainer, ModelCheckpoint]:
        with quiet_lightning():  # the Trainer's start-up lines (precision, GPU/TPU available, tips)
            return _trainer(cfg=cfg, root=root, has_val=has_val, precision=precision, progress=progress,
                            outcome=outcome, callbacks=callbacks)

    trainer, ckpt = build()
    if cfg.lr == "auto" and not resume:
        with quiet_lightning():
            outcome.lr, outcome.lr_found = _find_lr(module, dm, cfg, root, precision), True
        module.lr = outcome.lr
        trainer, ckpt = build()
    resume_from = None
    if resume:
        from transferkit.finetune.checkpoint import last_checkpoint, load_checkpoint

        resume_from = str(last_checkpoint(root))
        state = load_checkpoint(Path(resume_from))
        module.lr = float(state.get("transferkit_lr", module.lr))
    outcome.lr = float(module.lr)
    earlier = _read_rows(root / "logs" / "metrics.csv") if resume else []
    fit_guarded(trainer, module, dm, resume_from, batch_size)
    if earlier:
        _append_log(root / "logs" / "metrics.csv", earlier)
    outcome.trainer = trainer
    outcome.epochs_run = trainer.current_epoch
    outcome.world_size = trainer.world_size
    best = ckpt.best_model_path if has_val else ""
    if best and Path(best).is_file():
        from transferkit.finetune.checkpoint import load_checkpoint

        state = load_checkpoint(Path(best))
        module.load_state_dict(state["state_dict"])
        outcome.best_epoch = int(state.get("epoch", -1)) + 1
        score = ckpt.best_model_score
        outcome.best_score = float(score) if score is not None else None
        outcome.checkpoint = str(best)
    return outcome


def _trainer(*, cfg: FinetuneConfig, root: Path, has_val: bool, precision: str, progress: bool,
             outcome: TrainOutcome, callbacks: Sequence[pl.Callback]
             ) -> tuple[pl.Trainer, ModelCheckpoint]:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from transferkit.finetune.callbacks import EpochClock, FreezeRecorder, LrInCheckpoint
    from transferkit.finetune.freeze import FreezeSchedule

    monitor = cfg.monitor if has_val else None
    mode = "max" if cfg.monitor == "val_accuracy" else "min"
    ckpt = ModelCheckpoint(dirpath=root / "checkpoints", filename="best", monitor=monitor, mode=mode, save_top_k=1,
                           save_last=True, enable_version_counter=False)
    cbs: list[pl.Callback] = [
        FreezeSchedule(cfg.freeze if not cfg.peft else "frozen", cfg.head_epochs, cfg.unfreeze_per_epoch),
        ckpt,
        FreezeRecorder(outcome.trainable_by_epoch),
        LrInCheckpoint(),
        EpochClock(outcome.timeline),
    ]
    if has_val and cfg.patience:
        cbs.append(EarlyStopping(monitor=cfg.monitor, mode=mode, patience=cfg.patience))
    if progress:
        from lightning.pytorch.callbacks import RichProgressBar

        cbs.append(RichProgressBar(leave=True))
    cbs += list(callbacks)
    devices = cfg.devices
    strategy: str | Strategy = "auto"
    n_dev = int(devices) if isinstance(devices, int) or str(devices).isdigit() else None
    if n_dev is not None and n_dev > 1:
        from lightning.pytorch.strategies import DDPStrategy

        accel = cfg.accelerator
        cpu = accel == "cpu" or (accel == "auto" and not torch.cuda.is_available())
        strategy = DDPStrategy(find_unused_parameters=True, process_group_backend="gloo" if cpu else None)
    trainer = pl.Trainer(
        max_epochs=cfg.epochs,
        accelerator=cfg.accelerator,
        devices=n_dev if n_dev is not None else devices,
        strategy=strategy,
        precision=lightning_precision(precision, cfg.accelerator),  # type: ignore[arg-type]
        callbacks=cbs,
        logger=_loggers(root),
        default_root_dir=str(root),
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        use_distributed_sampler=False,
        deterministic=False,
    )
    return trainer, ckpt


def _find_lr(module: FinetuneModule, dm: FinetuneData, cfg: FinetuneConfig, root: Path, precision: str) -> float:
    """Lightning's LR range test on a bare trainer (no checkpoints, logs or validation)."""
    import lightning.pytorch as pl
    from lightning.pytorch.tuner import Tuner

    from transferkit.finetune.freeze import FreezeSchedule

    steps = max(20, cfg.lr_find_steps)  # the suggestion skips the first 10 points
    probe = pl.Trainer(
        max_epochs=steps,
        accelerator=cfg.accelerator,
        devices=1,
        precision=lightning_precision(precision, cfg.accelerator),  # type: ignore[arg-type]
        callbacks=[FreezeSchedule(cfg.freeze if not cfg.peft else "frozen", cfg.head_epochs, cfg.unfreeze_per_epoch)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        default_root_dir=str(root / "lr_find"),
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,
    )
    finder = Tuner(probe).lr_find(module, datamodule=dm, num_training=steps, min_lr=1e-6, max_lr=1.0,
                                  early_stop_threshold=None, update_attr=False)
    shutil.rmtree(root / "lr_find", ignore_errors=True)
    chosen = finder.suggestion() if finder is not None else None
    if chosen is None or not np.isfinite(chosen):
        raise ConfigError("--lr auto: the learning-rate finder found no clear minimum on this data; "
                          "give --lr explicitly (e.g. 1e-3)")
    return float(chosen)


def _loggers(root: Path) -> list[Logger]:
    from lightning.pytorch.loggers import CSVLogger

    loggers: list[Logger] = [CSVLogger(save_dir=str(root), name="logs", version="")]
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return loggers
    from lightning.pytorch.loggers import TensorBoardLogger

    loggers.append(TensorBoardLogger(save_dir=str(root), name="logs", version="tensorboard"))
    return loggers


def _read_rows(path: Path) -> list[dict[str, str]]:
    import csv

    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _append_log(path: Path, earlier: list[dict[str, str]]) -> None:
    """Put back the rows a resumed run's logger dropped (Lightning's CSVLogger rewrites its file):
    the epochs before the resumed one, then the new rows. Written atomically."""
    import csv
    import tempfile

    new = _read_rows(path)
    first = min((int(float(r["epoch"])) for r in new if r.get("epoch")), default=None)
    kept = [r for r in earlier if first is None or (r.get("epoch") and int(float(r["epoch"])) < first)]
    rows = kept + new
    fields = list(dict.fromkeys(k for r in rows for k in r))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".metrics.", suffix=".csv")
    with open(fd, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    Path(tmp).replace(path)


def fit_guarded(trainer: pl.Trainer, module: FinetuneModule, dm: FinetuneData, ckpt_path: str | None,
                batch_size: int) -> None:
    """`trainer.fit`, turning accelerator out-of-memory into advice on the batch size."""
    try:
        with quiet_lightning():
            trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    except torch.OutOfMemoryError as exc:
        raise OutOfMemory(oom_message(batch_size, str(exc))) from exc
    except RuntimeError as exc:
        if "out of memory" in str(exc).lower():
            raise OutOfMemory(oom_message(batch_size, str(exc))) from exc
        raise


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Hide Lightning's start-up chatter and the warnings that are intended here (frozen BN in eval)."""
    names = ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero")
    levels = [logging.getLogger(n).level for n in names]
    for n in names:
        logging.getLogger(n).setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=r".*litlogger.*")
        warnings.filterwarnings("ignore", message=r".*Total length of .* across ranks is zero.*")  # no val split
        try:
            yield
        finally:
            for n, level in zip(names, levels, strict=True):
                logging.getLogger(n).setLevel(level)


def oom_message(batch_size: int, detail: str = "") -> str:
    smaller = max(1, batch_size // 2)
    first = detail.strip().splitlines()[0] if detail.strip() else ""
    return (
        f"out of GPU memory at batch size {batch_size}{f' ({first})' if first else ''}. Try "
        f"--batch-size {smaller}"
        + (f" (or {max(1, smaller // 2)})" if smaller > 1 else "")
        + ", --precision bf16, or --peft lora / --freeze frozen, which keep fewer gradients."
    )
