"""`FinetunedClassifier`: parameter transfer — the backbone and a new head trained end to end.

    clf = FinetunedClassifier("efficientnet_lite0", training=FinetuneConfig(freeze="gradual", epochs=5))
    clf.fit(paths, labels, X_val=val_paths, y_val=val_labels, run_dir="runs/ft").save("runs/ft")
    transferkit.load("runs/ft").predict(paths)

A facade over `transferkit.finetune` (Lightning): this class says *what* is trained (which
backbone, head, seed, batch size, precision) and keeps the run folder — `run.json` records what is
trained on what, so that `fit(..., resume=True)` refuses another backbone or other data — while the
engine (`finetune.trainer`) decides how it runs. Once fitted, the network sits behind the backbone
contract (`LogitsBackbone`, logits as features, identity head), so prediction streams through the
same extractor as a probe's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypedDict

import numpy as np
import torch
from torch import nn

from transferkit.backbones.contract import Backbone, same_weights
from transferkit.cache import FeatureCache, resolve_cache
from transferkit.data.dataset import LabelledData
from transferkit.errors import BundleError, ConfigError, check_is_fitted
from transferkit.estimators.transfer_estimator import (
    Data,
    FitReport,
    Inputs,
    Labels,
    Params,
    TransferEstimator,
    as_labelled_data,
)
from transferkit.features import ExtractOptions, Features, extract_features, release_engines
from transferkit.finetune.adabn import AdaBNRecord
from transferkit.finetune.config import PRECISIONS, FinetuneConfig
from transferkit.finetune.model import FinetuneModel, LogitsBackbone
from transferkit.heads import HeadChoice, chosen_val_accuracy, class_weights, parse_head
from transferkit.jsontypes import JSONObject

if TYPE_CHECKING:
    from lightning.pytorch import Callback

    from transferkit.finetune.checkpoint import RunParams, RunTarget
    from transferkit.finetune.datamodule import FinetuneData
    from transferkit.finetune.module import FinetuneModule
    from transferkit.finetune.trainer import TrainOutcome
from transferkit.params import (
    BACKBONE,
    BATCH_SIZE,
    CACHE_DIR,
    DEVICE,
    ENGINE,
    FLAG,
    HEAD,
    NONE,
    PRECISION,
    PROGRESS,
    SEED,
    WEIGHTS,
    OneOf,
    Param,
    Types,
    param,
)


class LPFTStart(HeadChoice, total=False):
    """The probe head LP-FT starts from (`_probe_head`): the head's choice without its per-C scores, and
    its validation accuracy at the chosen C when it records one."""

    head_init: str
    val_accuracy: float


class KeptRecord(TypedDict, total=False):
    """`keep="better"`: which was kept (probe or finetuned), both validation accuracies, on how many inputs."""

    kept: str
    val_accuracy_probe: float
    val_accuracy_finetuned: float
    n_val: int


class TargetRecord(TypedDict, total=False):
    """Fine-tuning with target inputs: how many (and dropped), the MCC loss's weight, temperature and value
    by epoch; what AdaBN changed and the shift diagnostic (records of `finetune.adabn` / `adapt`)."""

    n_target: int
    dropped: int
    loss: str | None
    target_weight: float
    mcc_temperature: float
    mcc_by_epoch: dict[int, float]
    adabn: AdaBNRecord
    shift: JSONObject | None


class AdaptationLine(TypedDict, total=False):
    """What the fit summary and the bundle say about fine-tuning with a target."""

    applied: str
    why: str
    shift: JSONObject


@dataclass
class FinetuneReport(FitReport):
    """What happened during fine-tuning (the probe's report plus the training run)."""

    #: `keep="better"`: which was kept (probe or finetuned) and both validation accuracies
    kept: KeptRecord = field(default_factory=KeptRecord)
    epochs_run: int = 0
    best_epoch: int | None = None
    best_score: float | None = None
    lr: float = 0.0
    lr_found: bool = False
    trainable_by_epoch: dict[int, int] = field(default_factory=dict)
    #: [epoch, seconds since fit began, validation accuracy or None]; epoch 0 is the probe head
    #: LP-FT starts from (its seconds: extracting features and fitting it)
    timeline: list[list[float | None]] = field(default_factory=list)
    seconds: float = 0.0
    dropped: int = 0
    checkpoint: str | None = None
    world_size: int = 1
    input_size: int | None = None
    #: with target inputs (`X_target`): how many, the MCC loss's weight and temperature, its value by
    #: epoch, and what AdaBN changed
    target: TargetRecord = field(default_factory=TargetRecord)


#: the smallest input size fine-tuning runs at: below it an ImageNet CNN's last feature map is
#: a single cell, and fine-tuning 8×8 glyphs at 32 px collapsed to one class (96 px: 3×3 cells)
MIN_FINETUNE_SIZE = 96


def data_resolution(items: Inputs, model_size: int, sample: int = 64) -> int | None:
    """The input size to fine-tune at: the images' median short side (read from file headers),
    rounded up to a multiple of 32 and at least MIN_FINETUNE_SIZE, when that is smaller than the
    model's input; else None (the model's own size)."""
    from PIL import Image

    sides = []
    for item in list(items)[:: max(1, len(items) // sample)][:sample]:
        if not isinstance(item, str | os.PathLike):
            continue  # a decoded image or an array: no file header to read its size from
        try:
            with Image.open(item) as img:
                sides.append(min(img.size))
        except Exception:  # an unreadable file is the data loader's to report
            continue
    if not sides:
        return None
    median = float(np.median(sides))
    size = max(MIN_FINETUNE_SIZE, int(np.ceil(median / 32.0)) * 32)
    return size if size < model_size else None


_TRAINING: Param[FinetuneConfig | None] = param(None, "How to fine-tune (`FinetuneConfig`; None: its defaults).",
                                               rules=(NONE, Types((FinetuneConfig,), "a FinetuneConfig")))
#: the feature cache's declaration with fine-tuning's own default (False: no cache)
_CACHE_DIR: Param[str | Path | bool | FeatureCache | None] = param(
    False, CACHE_DIR.help, *CACHE_DIR.flags, rules=CACHE_DIR.rules, strategies=CACHE_DIR.strategies,
    modalities=CACHE_DIR.modalities, resumable=CACHE_DIR.resumable, cli=CACHE_DIR.cli)
_RUN_DIR: Param[str | Path | None] = param(None, "Folder of the run's checkpoints and record (None: no checkpoints).",
                                           rules=(NONE, Types((str, Path), "a folder")))
_RESUME: Param[bool] = param(False, "Continue the run in `run_dir` from its last checkpoint.", rules=FLAG)
#: the parameters that are fine-tuning's own (precision: fp16 too)
_OWN: dict[str, Param[object]] = {
    "precision": param(PRECISION.default, PRECISION.help, *PRECISION.flags, rules=OneOf(PRECISIONS)),
    "training": _TRAINING,
    "cache_dir": _CACHE_DIR,
    "run_dir": _RUN_DIR,
    "resume": _RESUME,
}


class FinetunedClassifier(TransferEstimator):
    """Backbone + head fine-tuned end to end on Lightning; `training` says how (see `FinetuneConfig`)."""

    kind: ClassVar[str] = "finetuned"
    adapts_to_target: ClassVar[bool] = True
    writes_run_folder: ClassVar[bool] = True
    _param_overrides: ClassVar[dict[str, Param[object]]] = _OWN
    _runtime_params: ClassVar[frozenset[str]] = frozenset(
        {"cache_dir", "progress", "device", "batch_size", "engine"})

    fit_report_: FinetuneReport
    model_: FinetuneModel
    peft_: JSONObject | None
    backbone_reference_: JSONObject
    backbone_: LogitsBackbone

    def __init__(
        self,
        backbone: str = BACKBONE.default,
        *,
        weights: str | None = WEIGHTS.default,
        head: str = HEAD.default,
        seed: int = SEED.default,
        batch_size: int = BATCH_SIZE.default,
        precision: str = PRECISION.default,
        training: FinetuneConfig | None = _TRAINING.default,
        cache_dir: str | Path | bool | FeatureCache | None = _CACHE_DIR.default,
        progress: bool = PROGRESS.default,
        device: str | None = DEVICE.default,
        engine: str = ENGINE.default,
        run_dir: str | Path | None = _RUN_DIR.default,
        resume: bool = _RESUME.default,
    ) -> None:
        self.backbone = backbone
        self.weights = weights
        self.head = head
        self.seed = seed
        self.batch_size = batch_size
        self.precision = precision
        self.training = training
        self.cache_dir = cache_dir
        self.progress = progress
        self.device = device
        self.engine = engine
        self.run_dir = run_dir
        self.resume = resume

    @property
    def config(self) -> FinetuneConfig:
        """The training settings in force (`training`, or the defaults)."""
        return self.training if self.training is not None else FinetuneConfig()

    def _validate_combination(self) -> None:
        self.config.validate()
        if self.resume and self.run_dir is None:
            raise ConfigError("resume=True continues the run in run_dir; give run_dir (the CLI: --resume RUN)")

    @property
    def modality_(self) -> str:
        check_is_fitted(self, "model_")
        return str(self.model_.backbone.modality)

    # -- fit ----------------------------------------------------------------------------------------
    def fit(
        self,
        X: Data,
        y: Labels | None = None,
        *,
        X_val: Inputs | None = None,
        y_val: Labels | None = None,
        run_record: JSONObject | None = None,
        callbacks: Sequence[Callback] = (),
        X_target: Inputs | None = None,
    ) -> FinetunedClassifier:
        """Fine-tune on (X, y), validating on (X_val, y_val) when given; returns `self`.

        The `run_dir` parameter keeps `run.json`, checkpoints and logs (a temporary folder when None);
        `resume=True` continues from `run_dir/checkpoints/last.ckpt` after checking that the run was
        started with the same backbone and training data. `run_record` is stored in `run.json`
        beside them (the CLI keeps the options it was started with there); `callbacks` are extra
        Lightning callbacks.

        `X_target`: unlabelled inputs of the domain the model will be used on (`fit --adapt-to`).
        Each labelled batch then has a target batch beside it, on which the Minimum Class Confusion
        loss trains (weight `training.target_weight`; `transferkit.adapt.mcc`); with `training.adabn`
        (off by default) the BatchNorm statistics are re-estimated on them after training (AdaBN,
        `transferkit.finetune.adabn`). They never enter the labels, validation or the probe's fit.
        """
        import lightning.pytorch as pl

        from transferkit.finetune.trainer import lightning_precision

        self.validate()
        cfg = self.config
        spec = parse_head(self.head)
        pl.seed_everything(self.seed, workers=True, verbose=False)
        data, backbone, target = self._training_data(X, y, X_target, run_record)
        val = (as_labelled_data(X_val, y_val, "validation data", modality=backbone.modality)
               if X_val is not None and len(X_val) else None)
        y_train, y_val_idx = self._class_indices(data, val)
        peft = self._apply_peft(backbone, cfg)
        torch.manual_seed(self.seed)
        model = FinetuneModel(backbone, spec, len(self.classes_))
        weights, sample_weights = self._balance(cfg, y_train)
        head_start: LPFTStart = {}
        probe_state: dict[str, torch.Tensor] | None = None
        lp_started = time.perf_counter()
        if cfg.head_init == "probe" and not spec.uses_feature_map and not self.resume:
            head_start = self._probe_head(model, data, y_train, val, y_val_idx, weights)
            if cfg.keep == "better" and val is not None:  # the probe, as fine-tuning starts from it
                probe_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

        shift_before = self._shift_features(model, data, target, cached=True) if target else None

        from transferkit.finetune.datamodule import Augment, FinetuneData
        from transferkit.finetune.module import FinetuneModule

        module = FinetuneModule(model, cfg, seed=self.seed, class_weights=weights, peft=peft)
        augment = Augment(cfg.aug_scale_min, cfg.aug_hflip, cfg.aug_color_jitter) if cfg.augment else None
        dm = FinetuneData(backbone, (list(data.items), y_train.tolist()),
                          (list(val.items), y_val_idx) if val is not None else None, batch_size=self.batch_size,
                          seed=self.seed, augment=augment, sample_weights=sample_weights,
                          num_workers=cfg.num_workers, target=target if cfg.target_weight > 0 else None)
        report = FinetuneReport(n_train=len(data), n_val=len(val) if val is not None else 0,
                                class_weighted=weights is not None)
        start = time.perf_counter()
        mcc_by_epoch: dict[int, float] = {}
        outcome = self._train(module, dm, has_val=val is not None, callbacks=callbacks,
                              mcc_by_epoch=mcc_by_epoch if target and cfg.target_weight > 0 else None)
        report.seconds = time.perf_counter() - start
        self._report_training(report, outcome, head_start, head_seconds=start - lp_started)
        report.dropped = dm.dropped
        report.precision = lightning_precision(self.precision, cfg.accelerator)
        report.notes = backbone.input_notes(data.items)
        report.input_size = backbone.preprocess_config().get("input_size")
        model.eval()
        self.model_, self.module_, self.peft_, self.trainer_ = model, module, peft, outcome.trainer
        self.fit_report_ = report
        self.train_class_counts_ = data.class_counts()
        self._set_predictor(model, "unsaved:" + str(id(model)))
        if probe_state is not None and val is not None:
            self._keep_better(model, probe_state, val, head_start, report)
        if target:
            report.target = {"n_target": len(target), "dropped": dm.dropped_target,
                             "loss": "mcc" if cfg.target_weight > 0 else None, "target_weight": cfg.target_weight,
                             "mcc_temperature": cfg.mcc_temperature,
                             "mcc_by_epoch": {int(k) + 1: round(v, 5) for k, v in sorted(mcc_by_epoch.items())}}
            self._adapt_after_training(model, data, target, report.target, shift_before)
        return self

    def _training_data(self, X: Data, y: Labels | None, X_target: Inputs | None,
                       run_record: JSONObject | None) -> tuple[LabelledData, Backbone, list[object]]:
        """The training data, the backbone built for it, and the target's inputs; the run folder recorded
        (a resumed run on other data or another backbone is refused first)."""
        run_dir, resume = self.run_dir, self.resume
        data = as_labelled_data(X, y, "training data", modality=self._modality_hint())
        backbone = self._build_backbone(self.config, data.items if not resume else ())
        data.modality = backbone.modality
        self.backbone_reference_ = {**backbone.describe(), "weights_source": self.weights,
                                    "random_seed": self.seed if self.weights == "random" else None}
        target = list(X_target) if X_target is not None else []
        if X_target is not None and not target:
            raise ConfigError("X_target: no target inputs were given (an empty list); give the unlabelled inputs "
                              "of the domain to adapt to, or None")
        if run_dir is not None and resume:  # first: resuming on other data or another backbone is refused
            self._record_run(Path(run_dir), data, resume=True, record=run_record or {}, target=target)
        data.validate_for_training()
        if run_dir is not None and not resume:
            self._record_run(Path(run_dir), data, resume=False, record=run_record or {}, target=target)
        return data, backbone, target

    def _class_indices(self, data: LabelledData, val: LabelledData | None) -> tuple[np.ndarray, list[int]]:
        """`classes_` from the training data; the class index of each training and validation label."""
        self.classes_ = np.array(data.classes)
        index = {c: i for i, c in enumerate(self.classes_)}
        if val is not None:
            unknown = sorted(set(val.labels) - set(index))
            if unknown:
                raise ConfigError(f"validation data has classes not in the training data: {unknown[:5]}")
        y_train = np.array([index[label] for label in data.labels])
        return y_train, [index[label] for label in val.labels] if val is not None else []

    @staticmethod
    def _apply_peft(backbone: Backbone, cfg: FinetuneConfig) -> JSONObject | None:
        """The parameter-efficient adapters `cfg.peft` asks for, put into `backbone` (None without)."""
        if not cfg.peft:
            return None
        from transferkit.finetune.peft import apply_peft

        return apply_peft(backbone, cfg.peft, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                          targets=list(cfg.lora_targets) if cfg.lora_targets else None)

    def _train(self, module: FinetuneModule, dm: FinetuneData, *, has_val: bool, callbacks: Sequence[Callback],
               mcc_by_epoch: dict[int, float] | None) -> TrainOutcome:
        """Lightning's run of `module` on `dm` (in `run_dir`, or a temporary folder removed afterwards);
        `mcc_by_epoch` collects the target's Minimum Class Confusion loss when given."""
        from transferkit.finetune.trainer import train_module
        from transferkit.runtime import is_rank_zero

        if mcc_by_epoch is not None:
            from transferkit.finetune.callbacks import EpochMetric

            callbacks = [*callbacks, EpochMetric("train_mcc", mcc_by_epoch)]
        root = Path(tempfile.mkdtemp(prefix="transferkit-ft-")) if self.run_dir is None else Path(self.run_dir)
        try:
            return train_module(module, dm, self.config, root=root, has_val=has_val, precision=self.precision,
                                batch_size=self.batch_size, progress=self.progress and is_rank_zero(),
                                resume=self.resume, callbacks=callbacks)
        finally:
            if self.run_dir is None:
                shutil.rmtree(root, ignore_errors=True)

    @staticmethod
    def _report_training(report: FinetuneReport, outcome: TrainOutcome, head_start: LPFTStart, *,
                         head_seconds: float) -> None:
        """What the training run says into `report`: its rate, epochs, best epoch and the timeline (the probe
        head it started from as epoch 0)."""
        report.lr, report.lr_found = outcome.lr, outcome.lr_found
        report.epochs_run, report.world_size = outcome.epochs_run, outcome.world_size
        report.best_epoch, report.best_score, report.checkpoint = (outcome.best_epoch, outcome.best_score,
                                                                   outcome.checkpoint)
        report.trainable_by_epoch = outcome.trainable_by_epoch
        report.timeline = ([[0, round(head_seconds, 3), head_start.get("val_accuracy")]] if head_start else []) + [
            [epoch + 1, round(head_seconds + seconds, 3), accuracy]
            for epoch, (seconds, accuracy) in sorted(outcome.timeline.items())]
        report.head_choice = head_start

    def _adapt_after_training(self, model: FinetuneModel, data: LabelledData, target: list[object],
                              record: TargetRecord,
                              shift_before: tuple[np.ndarray, np.ndarray, list[str]] | None) -> None:
        """AdaBN on the target's inputs (`training.adabn`) and the shift diagnostic, into `record`."""
        if self.config.adabn:
            record["adabn"] = self._adabn(model, list(data.items), target)
            self._set_predictor(model, "unsaved:" + str(id(model)))
        if shift_before is not None:
            record["shift"] = self._shift_record(model, data, target, shift_before)

    #: inputs of each domain the fine-tuning shift diagnostic compares (a seeded subsample): it
    #: extracts them twice, with the pretrained network and with the adapted one
    SHIFT_INPUTS: ClassVar[int] = 500

    def _shift_features(self, model: FinetuneModel, data: LabelledData, target: Inputs, *,
                        cached: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Pooled features of a seeded subsample of the training and target inputs, with the network
        as it is now (`cached`: only for the pretrained network, whose weights id names its features)."""
        from transferkit.finetune.adabn import subsample

        idx = subsample(list(range(len(data.items))), self.SHIFT_INPUTS, self.seed)
        tgt = subsample(list(target), self.SHIFT_INPUTS, self.seed + 1)
        options = ExtractOptions(batch_size=self.batch_size, precision="fp32", engine="torch", progress=False,
                                 device=self.device)
        store = resolve_cache(self.cache_dir) if cached else None
        was_training = model.training
        model.eval()
        try:
            src = extract_features(model.backbone, [data.items[i] for i in idx], options=options, cache=store,
                                   description="shift diagnostic (training inputs)")
            tf = extract_features(model.backbone, tgt, options=options, cache=store,
                                  description="shift diagnostic (target inputs)")
        finally:
            model.train(was_training)
        labels = [str(data.labels[i]) for i, ok in zip(idx, src.ok, strict=True) if ok]
        return src.values, tf.values, labels

    def _shift_record(self, model: FinetuneModel, data: LabelledData, target: Inputs,
                      before: tuple[np.ndarray, np.ndarray, list[str]]) -> JSONObject | None:
        """The shift diagnostic (`adapt.shift`) on the pretrained network's features, and on the
        fine-tuned, target-adapted network's (the 'after' columns) for the same inputs."""
        from transferkit.adapt.shift_diagnostic import diagnose_shift, map_coordinates

        source, tgt, labels = before
        after_s, after_t, _ = self._shift_features(model, data, target, cached=False)
        if len(source) < 2 or len(tgt) < 2 or after_s.shape[0] != source.shape[0] or after_t.shape != tgt.shape:
            return None  # inputs read before but not now (or the reverse): nothing comparable to say
        name = "fine-tuning with the target" + (" + AdaBN" if self.config.adabn else "")
        diagnostic = diagnose_shift(source, tgt, labels, source_aligned=after_s, target_aligned=after_t,
                                    alignment=name, seed=self.seed)
        record = diagnostic.to_dict()
        record["map"] = map_coordinates(source, tgt, labels, source_aligned=after_s, target_aligned=after_t,
                                        alignment=name, seed=self.seed)
        return record

    def _adabn(self, model: FinetuneModel, source: Inputs, target: Inputs) -> AdaBNRecord:
        """AdaBN after training: the BatchNorm statistics re-estimated for the target inputs."""
        from transferkit.finetune.adabn import MAX_INPUTS, adapt_batchnorm, item_batches, subsample

        device = next(model.parameters()).device
        backbone = model.backbone

        def forward(batch: object) -> torch.Tensor:
            return model(backbone.to_batch_device(batch, device))

        result = adapt_batchnorm(
            model, item_batches(backbone, subsample(source, MAX_INPUTS, self.seed), self.batch_size),
            item_batches(backbone, subsample(target, MAX_INPUTS, self.seed + 1), self.batch_size), forward)
        model.eval()
        return result

    def _keep_better(self, model: FinetuneModel, probe_state: dict[str, torch.Tensor], val: LabelledData,
                     head_start: LPFTStart, report: FinetuneReport) -> None:
        """`keep="better"`: the fine-tuned network against the probe it started from, on validation."""
        tuned = float(self.score(val.items, val.labels))
        # the linear probe's accuracy on validation from before its refit on train + val (scoring the
        # refitted probe on validation would score it on data it was fitted to)
        probe = head_start.get("val_accuracy")
        if probe is None:  # an MLP head, trained on train only (validation stopped it): score it
            tuned_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            model.load_state_dict(probe_state)
            self._set_predictor(model, "unsaved:" + str(id(model)))
            probe = float(self.score(val.items, val.labels))
            model.load_state_dict(tuned_state)
            self._set_predictor(model, "unsaved:" + str(id(model)))
        kept = "probe" if float(probe) > tuned else "finetuned"
        if kept == "probe":
            model.load_state_dict(probe_state)
            model.eval()
            self._set_predictor(model, "unsaved:" + str(id(model)))
        report.kept = {"kept": kept, "val_accuracy_probe": float(probe), "val_accuracy_finetuned": tuned,
                       "n_val": len(val)}

    def training_rate(self, X: Inputs, n_classes: int) -> float:
        """Examples per second this estimator's fine-tuning would train at here, timed on a few
        batches of `X` at the resolution it would train at (`--strategy auto`'s estimate)."""
        from transferkit.finetune.throughput import training_rate
        from transferkit.finetune.trainer import lightning_precision

        self.validate()
        cfg = self.config
        backbone = self._build_backbone(cfg, X)
        return training_rate(backbone, X, n_classes, batch_size=self.batch_size, head=self.head,
                             precision=lightning_precision(self.precision, cfg.accelerator))

    def _build_backbone(self, cfg: FinetuneConfig, items: Inputs = ()) -> Backbone:
        from transferkit.backbones import build_backbone

        kwargs = {"seed": self.seed} if self.weights == "random" else {}
        backbone = build_backbone(self._backbone_spec(self.backbone), weights=self.weights, **kwargs)
        if not backbone.layer_groups():
            raise ConfigError(f"backbone '{backbone.name}' cannot be fine-tuned (it exposes no trainable layers); "
                              "use the default --strategy probe")
        pre = backbone.preprocess_config()
        size = cfg.input_size
        if size is None and "input_size" in pre and items:
            size = data_resolution(items, int(pre["input_size"]))
        if size is not None and size != pre.get("input_size"):
            if "input_size" not in pre:
                raise ConfigError(f"input_size applies to image backbones; '{backbone.name}' is {backbone.modality}")
            backbone.apply_preprocess_config({**pre, "input_size": size})
        return backbone

    def _probe_head(self, model: FinetuneModel, data: LabelledData, y_train: np.ndarray, val: LabelledData | None,
                    y_val: list[int], weights: torch.Tensor | None) -> LPFTStart:
        """LP-FT's first step: fit the new head on the frozen backbone's pooled features (cached), copied in."""
        from transferkit.heads import HeadTraining, Standardize, train_on_features, train_probe

        items = list(data.items) + (list(val.items) if val is not None else [])
        options = ExtractOptions(batch_size=self.batch_size, precision="fp32" if self.precision == "fp32" else "auto",
                                 progress=self.progress, device=self.device)
        feats = extract_features(model.backbone, items, options=options, cache=resolve_cache(self.cache_dir),
                                 description=f"probe features ({model.backbone.name})")
        keep = feats.ok  # an unreadable input is the data loader's to drop and report
        values = np.zeros((len(items), model.head_in_features), np.float32)
        values[keep] = feats.values
        y_all = np.concatenate([y_train, np.asarray(y_val, np.int64)]).astype(np.int64)
        n = len(data.items)
        tr, va = np.flatnonzero(keep[:n]), np.flatnonzero(keep[n:]) + n
        class_w = None if weights is None else weights.numpy()
        spec, n_classes = model.spec, model.num_classes
        release_engines()  # the engine kept for the next extraction call: not beside the head's (and network's) fit
        if spec.kind == "linear":
            probe = train_probe(spec, values[tr], y_all[tr], values[va], y_all[va], n_classes, class_weight=class_w,
                                seed=self.seed)
            choice = probe.choice
            standardize, linear, target = probe.head[0], probe.head[1], model.head[-1]
            assert isinstance(standardize, Standardize) and isinstance(linear, nn.Linear)
            assert isinstance(target, nn.Linear)
            with torch.no_grad():  # fold (x - mean) / std into the linear layer the network trains
                # a nearly constant feature would get a huge weight: as the network trains and that feature
                # moves, the logits would swing; its std is floored at a tenth of the typical one
                std = standardize.std.clamp(min=0.1 * float(standardize.std.median()))
                weight = linear.weight / std
                target.weight.copy_(weight)
                target.bias.copy_(linear.bias - weight @ standardize.mean)
        else:
            _, choice = train_on_features(model.head, values[tr], y_all[tr], values[va], y_all[va], weights=class_w,
                                          seed=self.seed, training=HeadTraining(epochs=100, patience=10))
        honest = chosen_val_accuracy(choice)
        start: LPFTStart = {"head_init": "probe (LP-FT)"}
        # the choice's figures in its own order, without the per-C table (the one record that is a dict)
        if "C" in choice:
            start["C"] = choice["C"]
        if "epochs" in choice:
            start["epochs"] = choice["epochs"]
        if "val_loss" in choice:
            start["val_loss"] = choice["val_loss"]
        if honest is not None:
            start["val_accuracy"] = honest
        return start

    def _modality_hint(self) -> str:
        from transferkit.backbones import get_entry

        entry = get_entry(self.backbone)
        return entry.modality if entry is not None else "image"

    def _balance(self, cfg: FinetuneConfig, y_train: np.ndarray) -> tuple[torch.Tensor | None, np.ndarray | None]:
        """Class weights for the loss, or per-sample weights for a balanced sampler (`class_balance`)."""
        n_classes = len(self.classes_)
        if cfg.class_balance in ("auto", "weights"):
            w = class_weights(y_train, n_classes, "auto" if cfg.class_balance == "auto" else "balanced")
            return (None if w is None else torch.from_numpy(w)), None
        if cfg.class_balance == "sampler":
            counts = np.bincount(y_train, minlength=n_classes).astype(np.float64)
            return None, 1.0 / counts[y_train]
        return None, None

    def _record_run(self, run_dir: Path, data: LabelledData, *, resume: bool, record: JSONObject,
                    target: Inputs = ()) -> None:
        """A new run writes `run.json` (what is trained on what); a resumed one checks it is the same."""
        from transferkit.finetune.checkpoint import check_same_run, data_fingerprint, read_run, write_run
        from transferkit.runtime import is_rank_zero

        fingerprint = data_fingerprint([str(i) for i in data.items], data.labels)
        target_print = data_fingerprint([str(i) for i in target], [""] * len(target)) if target else None
        if resume:
            info = read_run(run_dir)
            check_same_run(run_dir, info, backbone=self.backbone_reference_, data=fingerprint)
            if info.get("target_fingerprint") != target_print:
                before = f"{info.get('n_target')} target inputs" if info.get("target_fingerprint") else "no target"
                now = f"{len(target)} target inputs" if target else "none"
                raise ConfigError(f"--resume '{run_dir}' was trained with {before} (--adapt-to); this run gives "
                                  f"{now}: resume it with the same target, or start a new run")
        elif is_rank_zero():
            targeted: RunTarget = {"target_fingerprint": target_print, "n_target": len(target)} if target else {}
            write_run(run_dir, {"status": "running", "data_source": data.source, "data_fingerprint": fingerprint,
                                **targeted, "n_train": len(data), "params": self._params_record(),
                                "backbone": self.backbone_reference_, "options": record})

    def _params_record(self) -> RunParams:
        return {"backbone": self.backbone, "weights": self.weights, "head": self.head, "seed": self.seed,
                "batch_size": self.batch_size, "precision": self.precision, "training": self.config.to_dict()}

    def _set_predictor(self, model: FinetuneModel, weights_id: str) -> None:
        self.backbone_ = LogitsBackbone(model, weights_id)
        self.head_ = nn.Identity()

    # -- predict ------------------------------------------------------------------------------------
    def features(self, X: Inputs, *, cache: bool = True) -> Features:
        """The fine-tuned network's logits (cached only once saved: an unsaved model has no stable id)."""
        check_is_fitted(self, "model_")
        store = resolve_cache(self.cache_dir) if cache else None
        if self.backbone_.weights_id.startswith("unsaved:"):
            store = None
        options = ExtractOptions(batch_size=self.batch_size, precision="auto", engine=self.engine,
                                 progress=self.progress, device=self.device)
        return extract_features(self.backbone_, list(X), options=options, cache=store, description="predicting")

    def summary(self) -> JSONObject:
        report, cfg = self.fit_report_, self.config
        return {**super().summary(), "strategy": "finetune", "backbone": self.backbone, "head": self.head,
                "freeze": "peft:" + cfg.peft if cfg.peft else cfg.freeze, "epochs_run": report.epochs_run,
                "best_epoch": report.best_epoch, "lr": report.lr, "lr_found": report.lr_found,
                "seconds": round(report.seconds, 2), "trainable_by_epoch": report.trainable_by_epoch,
                "processes": report.world_size, **({"kept": report.kept} if report.kept else {}),
                **({"target": report.target, "adaptation": self._adaptation_line()} if report.target else {})}

    def _adaptation_line(self) -> AdaptationLine:
        """What the fit summary says about fine-tuning with a target (`fit --adapt-to`)."""
        target, cfg = self.fit_report_.target, self.config
        parts = []
        if target.get("loss"):
            mcc = target.get("mcc_by_epoch") or {}
            trend = (f", {mcc[min(mcc)]:.3f} → {mcc[max(mcc)]:.3f} over epochs {min(mcc)}–{max(mcc)}"
                     if len(mcc) > 1 else "")
            parts.append(f"Minimum Class Confusion on target batches (weight {cfg.target_weight:g}, temperature "
                         f"{cfg.mcc_temperature:g}{trend})")
        if target.get("adabn"):
            parts.append(f"AdaBN: {target['adabn'].get('layers', 0)} BatchNorm layers' statistics re-estimated on "
                         "the target")
        line: AdaptationLine = {"applied": " + ".join(p.split(":")[0].split(" (")[0] for p in parts) or "none",
                                "why": "; ".join(parts) or "target_weight 0 and adabn off"}
        shift = target.get("shift")
        if shift:
            line["shift"] = shift
        return line

    # -- persistence --------------------------------------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        """Everything, or for PEFT only what was trained (+ the head)."""
        everything = self.model_.tensors()
        if not self.peft_:
            return {f"model.{k}": v for k, v in everything.items()}
        from transferkit.finetune.peft import is_peft_parameter

        method = self.peft_["method"]
        adabn = bool(self.fit_report_.target.get("adabn"))  # AdaBN changed the BatchNorm statistics: keep them
        keep = {k: v for k, v in everything.items()
                if k.startswith("head.") or (k.startswith("backbone.") and isinstance(v, nn.Parameter)
                                             and is_peft_parameter(k.removeprefix("backbone."), method))
                or (adabn and k.endswith((".running_mean", ".running_var")))}
        return {f"model.{k}": v for k, v in keep.items()}

    def _manifest(self) -> JSONObject:
        cfg, report = self.config, self.fit_report_
        return {
            "strategy": "finetune",
            "backbone": self.backbone_reference_,
            "head": {"spec": self.head, "uses_feature_map": self.model_.uses_feature_map,
                     "in_features": self.model_.head_in_features},
            "finetune": {
                "config": cfg.to_dict(), "peft": self.peft_, "stored": "trained" if self.peft_ else "all",
                "lr": report.lr, "lr_found": report.lr_found, "epochs_run": report.epochs_run,
                "best_epoch": report.best_epoch, "best_score": report.best_score, "monitor": cfg.monitor,
                "trainable_by_epoch": report.trainable_by_epoch, **({"kept": report.kept} if report.kept else {}),
                "timeline": report.timeline, **({"target": report.target} if report.target else {}),
            },
            **({"adaptation": self._adaptation_line()} if report.target else {}),
            "training": {"seed": self.seed, "batch_size": self.batch_size, "precision_setting": self.precision,
                         "n_train": report.n_train, "n_val": report.n_val, "class_counts": self.train_class_counts_,
                         "class_weighted": report.class_weighted, "precision": report.precision,
                         "skipped": report.dropped, "seconds": report.seconds},
        }

    def _card_facts(self, manifest: JSONObject) -> tuple[str, list[str], str, str]:
        ft = manifest["finetune"]
        how = f"PEFT {ft['peft']['method']}" if ft.get("peft") else f"freeze schedule '{ft['config']['freeze']}'"
        finder = " found by the LR finder" if ft.get("lr_found") else ""
        return (f"transferkit model: {manifest['backbone']['name']} fine-tuned + {manifest['head']['spec']} head",
                [f"- strategy: finetune ({how}, {ft['epochs_run']} epochs, lr {ft['lr']:.3g}{finder})",
                 f"- starting weights sha256: `{manifest['backbone']['weights_id']}`"],
                "examples",
                "Load with `transferkit predict <this folder> FILES…` or `transferkit.load(<this folder>)`.")

    def prepare_output(self, path: str | Path, *, overwrite: bool = False) -> None:
        """A run folder for a new run (an unfinished run there is refused unless `overwrite`)."""
        if self.resume:
            return
        from transferkit.finetune.checkpoint import prepare_run_folder

        prepare_run_folder(Path(path), overwrite=overwrite)

    def _write_bundle(self, path: Path, manifest: JSONObject, tensors: dict[str, torch.Tensor], card: str,
                      *, overwrite: bool) -> Path:
        """Into a run folder, the bundle lands beside its checkpoints (assembled aside, manifest moved last)."""
        from transferkit.bundle import MANIFEST, WEIGHTS, save_bundle
        from transferkit.finetune.checkpoint import RUN_FILE, finish_run

        if not (path / RUN_FILE).is_file():
            return save_bundle(path, manifest, tensors, card, overwrite=overwrite)
        staged = save_bundle(path.parent / f".{path.name}.bundle-{os.getpid()}", manifest, tensors, card,
                             overwrite=True)
        try:
            for name in ("README.md", WEIGHTS, MANIFEST):
                os.replace(staged / name, path / name)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        finish_run(path)
        return path

    @classmethod
    def _restore(cls, manifest: JSONObject, tensors: dict[str, torch.Tensor], path: Path,
                 overrides: Params) -> FinetunedClassifier:
        from transferkit.backbones import create_backbone
        from transferkit.backbones.weights import sha256_file
        from transferkit.bundle import WEIGHTS

        ft = manifest["finetune"]
        saved = ft["config"]  # older bundles kept backbone, head, seed, batch size and precision in it too
        info = manifest["backbone"]
        training = manifest.get("training", {})
        clf = cls(info["name"], weights=info.get("weights_source"), head=manifest["head"]["spec"],
                  seed=int(training.get("seed", saved.get("seed", 0))),
                  batch_size=int(training.get("batch_size", saved.get("batch_size", 32))),
                  precision=str(training.get("precision_setting", saved.get("precision", "auto"))),
                  training=FinetuneConfig.from_dict(saved), **overrides)
        full = ft.get("stored") == "all"
        if full and info.get("modality") == "image":
            backbone = create_backbone(info["name"], weights="random")  # every tensor comes from the bundle
        else:
            seed = info.get("random_seed")
            backbone = create_backbone(info["name"], weights=info.get("weights_source"),
                                       **({"seed": seed} if seed is not None else {}))
            if not same_weights(info["weights_id"], backbone):
                raise BundleError(f"'{path}' was fine-tuned from backbone '{info['name']}' with weights "
                                  f"{info['weights_id'][:12]}…, but the weights on this machine are "
                                  f"{backbone.weights_id[:12]}…; install the same weights")
        backbone.apply_preprocess_config(info["preprocess"])
        peft = ft.get("peft")
        if peft:
            from transferkit.finetune.peft import apply_peft

            if peft["method"] == "lora":
                apply_peft(backbone, "lora", r=peft["r"], alpha=peft["alpha"], dropout=peft["dropout"],
                           targets=peft["targets"])
            else:
                apply_peft(backbone, "bitfit")
        labels = manifest["labels"]
        model = FinetuneModel(backbone, parse_head(manifest["head"]["spec"]), len(labels))
        expected = {f"model.{k}" for k in model.tensors()}
        unknown, missing = set(tensors) - expected, expected - set(tensors)
        if unknown or (full and missing):
            raise BundleError(f"'{path}': its tensors do not fit the model it describes ({len(unknown)} unexpected, "
                              f"e.g. {sorted(unknown)[:3]}; {len(missing) if full else 0} missing, "
                              f"e.g. {sorted(missing)[:3] if full else []})")
        model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items()}, strict=False)
        model.eval()
        clf.classes_ = np.array(labels)
        clf.model_, clf.peft_, clf.backbone_reference_ = model, peft, info
        clf.fit_report_ = FinetuneReport(n_train=training.get("n_train", 0), n_val=training.get("n_val", 0),
                                         lr=ft.get("lr", 0.0), epochs_run=ft.get("epochs_run", 0),
                                         best_epoch=ft.get("best_epoch"), best_score=ft.get("best_score"))
        clf.train_class_counts_ = training.get("class_counts", {})
        clf._set_predictor(model, sha256_file(path / WEIGHTS))
        return clf
