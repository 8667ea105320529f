"""The fine-tuning engine: builds the Trainer, runs it, and keeps the best checkpoint.

`FinetunedClassifier` is the scikit-learn style entry point:

    cfg = FinetuneConfig(backbone="efficientnet_lite0", freeze="gradual")
    clf = FinetunedClassifier(cfg).fit(paths, labels)
    clf.predict(paths); clf.save("runs/ft"); load_finetuned("runs/ft")

It is a `TransferClassifier` whose "backbone" is the whole fine-tuned network (its features are
the logits) and whose head is the identity, so predict, predict_proba and evaluate are the very
same code path as for probes, streaming through the fast extractor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from transferkit.backbones.base import Backbone
from transferkit.classifier import FitReport, TransferClassifier, _as_data
from transferkit.data.dataset import LabelledData
from transferkit.errors import BundleError, ConfigError, TransferkitError, check_is_fitted
from transferkit.finetune.checkpoint import RUN_FILE, AtomicCheckpointIO
from transferkit.finetune.config import FinetuneConfig
from transferkit.finetune.model import FinetuneModel
from transferkit.heads import class_weights, parse_head


class OutOfMemory(TransferkitError):
    """Training ran out of accelerator memory at the chosen batch size."""


@dataclass
class FinetuneReport(FitReport):
    """What happened during fine-tuning (extends the probe's report)."""

    epochs_run: int = 0
    best_epoch: int | None = None
    best_score: float | None = None
    lr: float = 0.0
    lr_found: bool = False
    trainable_by_epoch: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    dropped: int = 0
    checkpoint: str | None = None
    world_size: int = 1


def lightning_precision(precision: str, accelerator: str) -> str:
    """Our precision names → Lightning's ('auto': bf16 where the hardware runs it natively)."""
    from transferkit.runtime import cpu_supports_bf16

    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if precision == "auto":
        if gpu:
            return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        return "bf16-mixed" if cpu_supports_bf16() else "32-true"
    return {"bf16": "bf16-mixed", "fp16": "16-mixed", "fp32": "32-true"}[precision]


def is_rank_zero() -> bool:
    """False in the extra processes a DDP launch starts (they must not write or print results)."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


class _FreezeRecorder:
    """Callback recording trainable parameter counts per epoch (for the report and the tests)."""

    def __new__(cls, report: FinetuneReport) -> Any:
        import lightning.pytorch as pl

        class Recorder(pl.Callback):
            def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
                report.trainable_by_epoch[trainer.current_epoch] = pl_module.trainable_parameter_count()

        return Recorder()


class LogitsBackbone(Backbone):
    """A fine-tuned network behind the backbone contract: preprocessing of its backbone, logits out."""

    def __init__(self, model: FinetuneModel, weights_id: str) -> None:
        super().__init__()
        self.inner = model
        self.name = f"{model.backbone.name}+finetuned"
        self.modality = model.backbone.modality
        self.num_features = model.num_classes
        self.weights_id = weights_id

    def preprocess_config(self) -> dict[str, Any]:
        return self.inner.backbone.preprocess_config()

    def load(self, item: Any) -> Any:
        return self.inner.backbone.load(item)

    def sample_loader(self) -> Any:
        return self.inner.backbone.sample_loader()

    def collate(self, samples: Sequence[Any]) -> Any:
        return self.inner.backbone.collate(samples)

    def to_batch_device(self, batch: Any, device: torch.device) -> Any:
        return self.inner.backbone.to_batch_device(batch, device)

    def forward_features(self, batch: Any) -> torch.Tensor:
        return self.inner(batch)

    def layer_groups(self) -> list[nn.Module]:
        return self.inner.backbone.layer_groups()


class FinetunedClassifier(TransferClassifier):
    """Backbone + head fine-tuned end to end on Lightning. Parameters live in `config` (validated in fit)."""

    # learned state beyond the probe's (declared for the type checker; absent until fit or load)
    fit_report_: FinetuneReport
    model_: FinetuneModel
    peft_: dict[str, Any] | None
    backbone_reference_: dict[str, Any]

    def __init__(
        self,
        config: FinetuneConfig | None = None,
        *,
        cache_dir: str | Path | bool | None = False,
        progress: bool = True,
        device: str | None = None,
    ) -> None:
        cfg = config or FinetuneConfig()
        super().__init__(
            backbone=cfg.backbone,
            weights=cfg.weights,
            head=cfg.head,
            seed=cfg.seed,
            batch_size=cfg.batch_size,
            precision="auto",
            cache_dir=cache_dir,
            progress=progress,
            device=device,
        )
        self.config = cfg

    def get_params(self) -> dict[str, Any]:
        return {"config": self.config}

    # -- fit --------------------------------------------------------------------------------------
    def fit(  # type: ignore[override]
        self,
        X: Sequence[Any] | LabelledData,
        y: Sequence[Any] | None = None,
        *,
        X_val: Sequence[Any] | None = None,
        y_val: Sequence[Any] | None = None,
        run_dir: str | Path | None = None,
        resume: bool = False,
        callbacks: Sequence[Any] = (),
        on_backbone: Callable[[dict[str, Any]], None] | None = None,
    ) -> FinetunedClassifier:
        """Fine-tune on (X, y), validating on (X_val, y_val) when given; returns `self`.

        `run_dir` keeps checkpoints and logs (a temporary folder when None); `resume=True`
        continues from `run_dir/checkpoints/last.ckpt`. `on_backbone` gets the backbone's reference
        (name, weights sha256, preprocessing) before training starts: the run folder records and checks it.
        """
        import lightning.pytorch as pl

        cfg = self.config.validate()
        spec = parse_head(cfg.head)
        data = _as_data(X, y, "training data")
        data.validate_for_training()
        val = _as_data(X_val, y_val, "validation data") if X_val is not None and len(X_val) else None
        self.classes_ = np.array(data.classes)
        index = {c: i for i, c in enumerate(self.classes_)}
        if val is not None:
            unknown = sorted(set(val.labels) - set(index))
            if unknown:
                raise ConfigError(f"validation data has classes not in the training data: {unknown[:5]}")
        y_train = np.array([index[label] for label in data.labels])
        y_val_idx = [index[label] for label in val.labels] if val is not None else []

        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        backbone = self._build_backbone(cfg)
        self.backbone_reference_ = {
            **backbone.describe(),
            "weights_source": cfg.weights,
            "random_seed": cfg.seed if cfg.weights == "random" else None,
        }
        if on_backbone is not None:
            on_backbone(self.backbone_reference_)
        peft = None
        if cfg.peft:
            from transferkit.finetune.peft import apply_peft

            peft = apply_peft(
                backbone,
                cfg.peft,
                r=cfg.lora_r,
                alpha=cfg.lora_alpha,
                dropout=cfg.lora_dropout,
                targets=cfg.lora_targets,
            )
        torch.manual_seed(cfg.seed)
        model = FinetuneModel(backbone, spec, len(self.classes_))

        balance = cfg.class_balance
        weights = None
        sample_weights = None
        if balance in ("auto", "weights"):
            w = class_weights(y_train, len(self.classes_), "auto" if balance == "auto" else "balanced")
            weights = None if w is None else torch.from_numpy(w)
        elif balance == "sampler":
            counts = np.bincount(y_train, minlength=len(self.classes_)).astype(np.float64)
            sample_weights = 1.0 / counts[y_train]

        from transferkit.finetune.data import Augment, FinetuneData
        from transferkit.finetune.module import FinetuneModule

        module = FinetuneModule(model, cfg, class_weights=weights, peft=peft)
        augment = Augment(cfg.aug_scale_min, cfg.aug_hflip, cfg.aug_color_jitter) if cfg.augment else None
        dm = FinetuneData(
            backbone,
            (list(data.items), y_train.tolist()),
            (list(val.items), y_val_idx) if val is not None else None,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            augment=augment,
            sample_weights=sample_weights,
            num_workers=cfg.num_workers,
        )

        own_tmp = run_dir is None
        root = Path(tempfile.mkdtemp(prefix="transferkit-ft-")) if own_tmp else Path(run_dir)  # type: ignore[arg-type]
        report = FinetuneReport(
            n_train=len(data), n_val=len(val) if val is not None else 0, class_weighted=weights is not None
        )
        start = time.perf_counter()
        try:
            trainer, ckpt = self._trainer(cfg, root, has_val=val is not None, report=report, callbacks=callbacks)
            if cfg.lr == "auto" and not resume:
                with _quiet_lightning():
                    report.lr, report.lr_found = self._find_lr(trainer, module, dm, cfg, root), True
                module.lr = report.lr
                trainer, ckpt = self._trainer(cfg, root, has_val=val is not None, report=report, callbacks=callbacks)
            else:
                report.lr = module.lr
            resume_from = None
            if resume:
                from transferkit.finetune.checkpoint import last_checkpoint

                resume_from = str(last_checkpoint(root))
                state = torch.load(resume_from, map_location="cpu", weights_only=True)
                module.lr = float(state.get("transferkit_lr", module.lr))
                report.lr = module.lr
            _fit_guarded(trainer, module, dm, resume_from, cfg)
            report.epochs_run = trainer.current_epoch
            report.world_size = trainer.world_size
            best = ckpt.best_model_path if val is not None else ""
            if best and Path(best).is_file():
                state = torch.load(best, map_location="cpu", weights_only=True)
                module.load_state_dict(state["state_dict"])
                report.best_epoch = int(state.get("epoch", -1)) + 1
                score = ckpt.best_model_score
                report.best_score = float(score) if score is not None else None
                report.checkpoint = str(best)
            report.dropped = dm.dropped
            self.trainer_ = trainer
        finally:
            if own_tmp:
                shutil.rmtree(root, ignore_errors=True)
        report.seconds = time.perf_counter() - start
        report.precision = lightning_precision(cfg.precision, cfg.accelerator)
        model.eval()
        self.model_ = model
        self.module_ = module
        self.peft_ = peft
        self.fit_report_ = report
        self.train_class_counts_ = data.class_counts()
        self._set_predictor(model, "unsaved:" + str(id(model)))
        return self

    def _build_backbone(self, cfg: FinetuneConfig) -> Backbone:
        from transferkit.backbones import create_backbone

        kwargs = {"seed": cfg.seed} if cfg.weights == "random" else {}
        backbone = create_backbone(cfg.backbone, weights=cfg.weights, **kwargs)
        if cfg.input_size is not None:
            pre = backbone.preprocess_config()
            if "input_size" not in pre:
                raise ConfigError(f"input_size applies to image backbones; '{backbone.name}' is {backbone.modality}")
            backbone.apply_preprocess_config({**pre, "input_size": cfg.input_size})
        return backbone

    def _trainer(
        self,
        cfg: FinetuneConfig,
        root: Path,
        *,
        has_val: bool,
        report: FinetuneReport,
        callbacks: Sequence[Any],
    ) -> tuple[Any, Any]:
        import lightning.pytorch as pl
        from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

        from transferkit.finetune.freeze import FreezeSchedule

        monitor = cfg.monitor if has_val else None
        mode = "max" if cfg.monitor == "val_accuracy" else "min"
        ckpt = ModelCheckpoint(
            dirpath=root / "checkpoints",
            filename="best",
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            save_last=True,
            enable_version_counter=False,
        )
        cbs: list[Any] = [
            FreezeSchedule(cfg.freeze if not cfg.peft else "frozen", cfg.head_epochs, cfg.unfreeze_per_epoch),
            ckpt,
            _FreezeRecorder(report),
            _LrInCheckpoint(),
        ]
        if has_val and cfg.patience:
            cbs.append(EarlyStopping(monitor=cfg.monitor, mode=mode, patience=cfg.patience))
        if cfg.progress:
            from lightning.pytorch.callbacks import RichProgressBar

            cbs.append(RichProgressBar(leave=True))
        cbs += list(callbacks)
        loggers = _loggers(root)
        devices = cfg.devices
        strategy: Any = "auto"
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
            precision=lightning_precision(cfg.precision, cfg.accelerator),  # type: ignore[arg-type]
            callbacks=cbs,
            logger=loggers,
            default_root_dir=str(root),
            plugins=[AtomicCheckpointIO()],
            enable_progress_bar=cfg.progress,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=1,
            use_distributed_sampler=False,
            deterministic=False,
        )
        return trainer, ckpt

    def _find_lr(self, trainer: Any, module: Any, dm: Any, cfg: FinetuneConfig, root: Path) -> float:
        """Lightning's LR range test on a bare trainer (no checkpoints, logs or validation)."""
        import lightning.pytorch as pl
        from lightning.pytorch.tuner import Tuner

        from transferkit.finetune.freeze import FreezeSchedule

        steps = max(20, cfg.lr_find_steps)  # the suggestion skips the first 10 points
        probe = pl.Trainer(
            max_epochs=steps,
            accelerator=cfg.accelerator,
            devices=1,
            precision=lightning_precision(cfg.precision, cfg.accelerator),  # type: ignore[arg-type]
            callbacks=[
                FreezeSchedule(cfg.freeze if not cfg.peft else "frozen", cfg.head_epochs, cfg.unfreeze_per_epoch)
            ],
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
        finder = Tuner(probe).lr_find(
            module,
            datamodule=dm,
            num_training=steps,
            min_lr=1e-6,
            max_lr=1.0,
            early_stop_threshold=None,
            update_attr=False,
        )
        shutil.rmtree(root / "lr_find", ignore_errors=True)
        chosen = finder.suggestion() if finder is not None else None
        if chosen is None or not np.isfinite(chosen):
            raise ConfigError(
                "--lr auto: the learning-rate finder found no clear minimum on this data; "
                "give --lr explicitly (e.g. 1e-3)"
            )
        return float(chosen)

    def _set_predictor(self, model: FinetuneModel, weights_id: str) -> None:
        self.backbone_ = LogitsBackbone(model, weights_id)
        self._backbone_key = (self.backbone, self.weights)
        self.head_ = nn.Identity()

    # -- persistence ------------------------------------------------------------------------------
    def trained_tensors(self) -> dict[str, torch.Tensor]:
        """What the bundle stores: everything, or for PEFT only what was trained (+ head)."""
        check_is_fitted(self, "model_")
        everything = self.model_.tensors()
        if not self.peft_:
            return {f"model.{k}": v for k, v in everything.items()}
        from transferkit.finetune.peft import is_peft_parameter

        method = self.peft_["method"]
        keep = {
            k: v
            for k, v in everything.items()
            if k.startswith("head.")
            or (
                k.startswith("backbone.")
                and is_peft_parameter(k.removeprefix("backbone."), method)
                and isinstance(v, nn.Parameter)
            )
        }
        return {f"model.{k}": v for k, v in keep.items()}

    def save(
        self,
        path: str | Path,
        *,
        metrics: dict[str, Any] | None = None,
        overwrite: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Write the bundle (`strategy: finetune`); into a run folder, next to its checkpoints."""
        from transferkit.bundle import save_bundle

        check_is_fitted(self, "model_")
        cfg, report = self.config, self.fit_report_
        manifest = {
            "task": "classification",
            "strategy": "finetune",
            "labels": [str(c) for c in self.classes_],
            "backbone": self.backbone_reference_,
            "head": {
                "spec": cfg.head,
                "uses_feature_map": self.model_.uses_feature_map,
                "in_features": self.model_.head_in_features,
            },
            "finetune": {
                "config": cfg.to_dict(),
                "peft": self.peft_,
                "stored": "trained" if self.peft_ else "all",
                "lr": report.lr,
                "lr_found": report.lr_found,
                "epochs_run": report.epochs_run,
                "best_epoch": report.best_epoch,
                "best_score": report.best_score,
                "monitor": cfg.monitor,
                "trainable_by_epoch": report.trainable_by_epoch,
            },
            "training": {
                "seed": cfg.seed,
                "n_train": report.n_train,
                "n_val": report.n_val,
                "class_counts": self.train_class_counts_,
                "class_weighted": report.class_weighted,
                "precision": report.precision,
                "skipped": report.dropped,
                "seconds": report.seconds,
            },
            "metrics": metrics or {},
            **(extra or {}),
        }
        tensors = self.trained_tensors()
        card = _model_card(manifest)
        target = Path(path)
        if not (target / RUN_FILE).is_file():
            return save_bundle(target, manifest, tensors, card, overwrite=overwrite)
        # a run folder: assemble the bundle next to it, then move its files in (manifest last)
        staged = save_bundle(
            target.parent / f".{target.name}.bundle-{os.getpid()}", manifest, tensors, card, overwrite=True
        )
        try:
            from transferkit.bundle import MANIFEST, WEIGHTS

            for name in ("README.md", WEIGHTS, MANIFEST):
                os.replace(staged / name, target / name)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        return target

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> FinetunedClassifier:  # type: ignore[override]
        """Rebuild a fine-tuned bundle; PEFT bundles need the same backbone weights (sha256 checked)."""
        from transferkit.backbones import create_backbone
        from transferkit.backbones.weights import sha256_file
        from transferkit.bundle import WEIGHTS, load_bundle

        manifest, tensors = load_bundle(path)
        if manifest.get("strategy") != "finetune":
            raise BundleError(f"'{path}' holds a {manifest.get('strategy', 'probe')} model, not a fine-tuned one")
        ft = manifest["finetune"]
        cfg = FinetuneConfig.from_dict(ft["config"])
        info = manifest["backbone"]
        clf = cls(
            cfg,
            cache_dir=overrides.get("cache_dir", False),
            progress=overrides.get("progress", True),
            device=overrides.get("device"),
        )
        full = ft.get("stored") == "all"
        if full and info.get("modality") == "image":
            backbone = create_backbone(info["name"], weights="random")  # every tensor comes from the bundle
        else:
            seed = info.get("random_seed")
            backbone = create_backbone(
                info["name"],
                weights=info.get("weights_source"),
                **({"seed": seed} if seed is not None else {}),
            )
            if backbone.weights_id != info["weights_id"]:
                raise BundleError(
                    f"'{path}' was fine-tuned from backbone '{info['name']}' with weights "
                    f"{info['weights_id'][:12]}…, but the weights on this machine are "
                    f"{backbone.weights_id[:12]}…; install the same weights"
                )
        backbone.apply_preprocess_config(info["preprocess"])
        peft = ft.get("peft")
        if peft:
            from transferkit.finetune.peft import apply_peft

            if peft["method"] == "lora":
                apply_peft(
                    backbone,
                    "lora",
                    r=peft["r"],
                    alpha=peft["alpha"],
                    dropout=peft["dropout"],
                    targets=peft["targets"],
                )
            else:
                apply_peft(backbone, "bitfit")
        labels = manifest["labels"]
        model = FinetuneModel(backbone, parse_head(manifest["head"]["spec"]), len(labels))
        expected = {f"model.{k}" for k in model.tensors()}
        unknown = set(tensors) - expected
        missing = expected - set(tensors)
        if unknown or (full and missing):
            raise BundleError(
                f"'{path}': its tensors do not fit the model it describes "
                f"({len(unknown)} unexpected, e.g. {sorted(unknown)[:3]}; "
                f"{len(missing) if full else 0} missing, e.g. {sorted(missing)[:3] if full else []})"
            )
        model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items()}, strict=False)
        model.eval()
        clf.classes_ = np.array(labels)
        clf.model_ = model
        clf.peft_ = peft
        clf.backbone_reference_ = info
        training = manifest.get("training", {})
        clf.fit_report_ = FinetuneReport(
            n_train=training.get("n_train", 0),
            n_val=training.get("n_val", 0),
            lr=ft.get("lr", 0.0),
            epochs_run=ft.get("epochs_run", 0),
            best_epoch=ft.get("best_epoch"),
            best_score=ft.get("best_score"),
        )
        clf.train_class_counts_ = training.get("class_counts", {})
        clf.manifest_ = manifest
        clf._set_predictor(model, sha256_file(Path(path) / WEIGHTS))
        return clf


def load_finetuned(path: str | Path, **overrides: Any) -> FinetunedClassifier:
    """Load a fine-tuned bundle (same `classes_` / `predict_proba` / `evaluate` surface as probes)."""
    return FinetunedClassifier.load(path, **overrides)


def _lr_in_checkpoint_cls() -> Any:
    import lightning.pytorch as pl

    class LrInCheckpoint(pl.Callback):
        """Stores the base LR (possibly found by `--lr auto`) so that a resume reuses it."""

        def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
            checkpoint["transferkit_lr"] = float(pl_module.lr)

    return LrInCheckpoint


def _LrInCheckpoint() -> Any:
    return _lr_in_checkpoint_cls()()


def _loggers(root: Path) -> list[Any]:
    from lightning.pytorch.loggers import CSVLogger

    loggers: list[Any] = [CSVLogger(save_dir=str(root), name="logs", version="")]
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return loggers
    from lightning.pytorch.loggers import TensorBoardLogger

    loggers.append(TensorBoardLogger(save_dir=str(root), name="logs", version="tensorboard"))
    return loggers


def _fit_guarded(trainer: Any, module: Any, dm: Any, ckpt_path: str | None, cfg: FinetuneConfig) -> None:
    """`trainer.fit`, turning accelerator out-of-memory into advice on the batch size."""
    try:
        with _quiet_lightning():
            trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    except torch.OutOfMemoryError as exc:
        raise OutOfMemory(oom_message(cfg.batch_size, str(exc))) from exc
    except RuntimeError as exc:
        if "out of memory" in str(exc).lower():
            raise OutOfMemory(oom_message(cfg.batch_size, str(exc))) from exc
        raise


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
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


def _model_card(manifest: dict[str, Any]) -> str:
    from transferkit.bundle import model_card

    ft = manifest["finetune"]
    how = f"PEFT {ft['peft']['method']}" if ft.get("peft") else f"freeze schedule '{ft['config']['freeze']}'"
    finder = " found by the LR finder" if ft.get("lr_found") else ""
    return model_card(
        manifest,
        title=f"transferkit model: {manifest['backbone']['name']} fine-tuned + {manifest['head']['spec']} head",
        facts=[f"- strategy: finetune ({how}, {ft['epochs_run']} epochs, lr {ft['lr']:.3g}{finder})",
               f"- starting weights sha256: `{manifest['backbone']['weights_id']}`"],
        unit="examples",
        usage="Load with `transferkit predict <this folder> FILES…` or "
              "`transferkit.finetune.load_finetuned(<this folder>)`.",
    )


__all__ = [
    "FinetuneReport",
    "FinetunedClassifier",
    "LogitsBackbone",
    "OutOfMemory",
    "is_rank_zero",
    "lightning_precision",
    "load_finetuned",
    "oom_message",
]
