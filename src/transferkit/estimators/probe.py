"""`TransferClassifier`: feature transfer — a frozen pretrained backbone and a head on its features.

    clf = TransferClassifier(backbone="efficientnet_lite0").fit(paths, labels)
    clf.predict(paths); clf.predict_proba(paths); clf.save("runs/x"); TransferClassifier.load("runs/x")

`fit` computes the frozen backbone's features once (cached on disk, so a second fit on the same
data extracts nothing), then trains the head on them, choosing its regularisation on a
validation split carved from the training data when none is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from transferkit.backbones.base import Backbone, same_weights
from transferkit.cache import FeatureCache, resolve_cache
from transferkit.data.dataset import LabelledData
from transferkit.errors import BundleError, ConfigError, DataError, check_is_fitted
from transferkit.estimators.base import (
    CACHE,
    CLASS_WEIGHT,
    ENGINE,
    FLAG,
    LONG_TEXT,
    NAME,
    OPTIONAL_NAME,
    POSITIVE_INT,
    PROBE_PRECISION,
    SEED,
    VAL_FRACTION,
    VIEWS,
    FitReport,
    TransferEstimator,
    as_labelled_data,
    head_spec,
)
from transferkit.features import ExtractOptions, Features, extract_features
from transferkit.heads import build_head, class_weights, fit_head, parse_head


class TransferClassifier(TransferEstimator):
    """Frozen pretrained backbone + a head trained on its cached features.

    `cache_dir=None` uses the default cache folder; `cache_dir=False` disables the cache.
    `long_text="chunk"` (text backbones) embeds overlapping windows of long texts and averages them.
    `augment=K` also trains the head on the features of K augmented views of each training input
    (images: crops, flips, colour jitter, grayscale; audio: speed, pitch, noise, gain — see
    `data.augment`); `tta=K` averages the predictions over the input and K views of it.
    """

    kind: ClassVar[str] = "probe"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "backbone": NAME,
        "weights": OPTIONAL_NAME,
        "head": head_spec(),
        "class_weight": CLASS_WEIGHT,
        "val_fraction": VAL_FRACTION,
        "seed": SEED,
        "batch_size": POSITIVE_INT,
        "precision": PROBE_PRECISION,
        "engine": ENGINE,
        "long_text": LONG_TEXT,
        "augment": VIEWS,
        "tta": VIEWS,
        "cache_dir": CACHE,
        "strict": FLAG,
        "progress": FLAG,
        "device": OPTIONAL_NAME,
    }
    _runtime_params: ClassVar[frozenset[str]] = frozenset(
        {"cache_dir", "progress", "device", "batch_size", "precision", "engine", "tta"})

    backbone_: Backbone

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        *,
        weights: str | None = None,
        head: str = "linear",
        class_weight: str = "auto",
        val_fraction: float = 0.15,
        seed: int = 0,
        batch_size: int = 32,
        precision: str = "auto",
        engine: str = "auto",
        long_text: str = "truncate",
        augment: int = 0,
        tta: int = 0,
        cache_dir: str | Path | bool | FeatureCache | None = None,
        strict: bool = False,
        progress: bool = True,
        device: str | None = None,
    ) -> None:
        self.backbone = backbone
        self.weights = weights
        self.head = head
        self.class_weight = class_weight
        self.val_fraction = val_fraction
        self.seed = seed
        self.batch_size = batch_size
        self.precision = precision
        self.engine = engine
        self.long_text = long_text
        self.augment = augment
        self.tta = tta
        self.cache_dir = cache_dir
        self.strict = strict
        self.progress = progress
        self.device = device

    def _validate_combination(self) -> None:
        if parse_head(self.head).uses_feature_map:
            raise ConfigError(
                f"head '{self.head}' starts with flatten, which needs the unpooled feature map: use "
                "--strategy finetune (with --freeze frozen for pure feature transfer)"
            )

    @property
    def modality_(self) -> str:
        check_is_fitted(self, "backbone_")
        return str(self.backbone_.modality)

    def _cache(self) -> FeatureCache | None:
        return resolve_cache(self.cache_dir)

    def _options(self) -> ExtractOptions:
        return ExtractOptions(batch_size=self.batch_size, precision=self.precision, engine=self.engine,
                              progress=self.progress,
                              device=self.device)

    def _create_backbone(self) -> Backbone:
        from transferkit.backbones import create_backbone, get_entry

        kwargs: dict[str, Any] = {"seed": self.seed} if self.weights == "random" else {}
        if self.long_text != "truncate":
            entry = get_entry(self.backbone)
            if entry is not None and entry.modality != "text":
                raise ConfigError(f"long_text applies to text backbones; '{self.backbone}' is {entry.modality}")
            kwargs["long_text"] = self.long_text
        return create_backbone(self.backbone, weights=self.weights, **kwargs)

    # -- fit ----------------------------------------------------------------------------------------
    def fit(
        self,
        X: Sequence[Any] | LabelledData | str | Path,
        y: Sequence[Any] | None = None,
        *,
        X_val: Sequence[Any] | None = None,
        y_val: Sequence[Any] | None = None,
    ) -> TransferClassifier:
        """Extract features of `X` (and `X_val`), train the head, and return `self`.

        Without `X_val`, a stratified `val_fraction` of `X` selects the head's settings; the final
        linear head is then refitted on all of `X`.
        """
        self.validate()
        spec = parse_head(self.head)
        torch.manual_seed(self.seed)
        if getattr(self, "_backbone_key", None) != (self.backbone, self.weights, self.long_text):
            self.backbone_ = self._create_backbone()
            self._backbone_key = (self.backbone, self.weights, self.long_text)
        modality = self.backbone_.modality
        data = as_labelled_data(X, y, "training data", modality=modality)
        data.validate_for_training()
        val = as_labelled_data(X_val, y_val, "validation data", modality=modality) if X_val is not None else None

        items = list(data.items) + (list(val.items) if val else [])
        feats = extract_features(self.backbone_, items, options=self._options(), cache=self._cache(),
                                 description=f"features ({self.backbone_.name})")
        report = FitReport(extracted=feats.extracted, cached=feats.cached, precision=feats.precision,
                           extract_seconds=feats.seconds, engine=feats.engine, engine_notes=list(feats.notes))
        report.skipped = {str(items[i]): reason for i, reason in feats.failed.items()}
        if feats.failed and self.strict:
            first = next(iter(report.skipped.values()))
            raise DataError(f"{len(feats.failed)} input(s) could not be read (--strict): {first}")
        if not feats.ok.any():
            raise DataError(f"{data.source}: none of the {len(items)} inputs could be read; first error: "
                            f"{next(iter(report.skipped.values()), 'unknown')}")

        labels = np.array([str(v) for v in data.labels] + ([str(v) for v in val.labels] if val else []))
        values = np.zeros((len(items), feats.values.shape[1]), np.float32)
        values[feats.ok] = feats.values
        n_train = len(data.items)
        train_ok = np.flatnonzero(feats.ok[:n_train])
        kept = data.subset(train_ok.tolist())
        kept.validate_for_training()
        self.classes_ = np.array(kept.classes)
        index = {c: i for i, c in enumerate(self.classes_)}

        if val is not None:
            val_ok = np.flatnonzero(feats.ok[n_train:]) + n_train
            unknown = sorted({labels[i] for i in val_ok} - set(index))
            if unknown:
                raise DataError(f"validation data has classes not in the training data: {unknown[:5]}")
            tr_idx, va_idx = train_ok, val_ok
        else:
            from transferkit.data.split import split_indices

            parts = split_indices([labels[i] for i in train_ok], val_fraction=self.val_fraction,
                                  test_fraction=0.0, seed=self.seed)
            tr_idx, va_idx = train_ok[parts["train"]], train_ok[parts["val"]]
        y_all = np.array([index.get(label, -1) for label in labels])
        if self.augment:
            values, y_all, tr_idx = self._with_views(data, train_ok, tr_idx, values, y_all, report)
        weights = class_weights(y_all[tr_idx], len(self.classes_), self.class_weight)
        head, choice = fit_head(spec, values[tr_idx], y_all[tr_idx], values[va_idx], y_all[va_idx],
                                len(self.classes_), weights=weights, seed=self.seed,
                                blocks=self.backbone_.feature_blocks())
        self.head_ = head
        report.n_train, report.n_val = len(tr_idx), len(va_idx)
        report.head_choice, report.class_weighted = choice, weights is not None
        if self.augment:
            report.head_choice = {**choice, "augmented_views": report.augmented}
        report.notes = self.backbone_.input_notes(data.items)
        self.fit_report_ = report
        self.train_class_counts_ = kept.class_counts()
        return self

    def _with_views(self, data: LabelledData, train_ok: np.ndarray, tr_idx: np.ndarray, values: np.ndarray,
                    y_all: np.ndarray, report: FitReport) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The training rows plus the features of `augment` views of each (readable) training input."""
        from transferkit.data.augment import views_of

        chosen = [int(i) for i in tr_idx if i < len(data.items)]
        views = views_of([data.items[i] for i in chosen], self.backbone_.modality, self.augment, self.seed)
        feats = extract_features(self.backbone_, views, options=self._options(), cache=self._cache(),
                                 description=f"features of {self.augment} augmented view(s) ({self.backbone_.name})")
        report.extracted += feats.extracted
        report.cached += feats.cached
        labels = np.tile(y_all[chosen], self.augment)[feats.ok]
        start = len(values)
        values = np.concatenate([values, feats.values.astype(np.float32)])
        y_all = np.concatenate([y_all, labels])
        report.augmented = int(feats.ok.sum())
        return values, y_all, np.concatenate([tr_idx, np.arange(start, len(values))])

    # -- predict ------------------------------------------------------------------------------------
    def features(self, X: Sequence[Any], *, cache: bool = True) -> Features:
        """The backbone's features; with `tta=K`, those of the input and of K views side by side."""
        check_is_fitted(self, "head_")
        store = self._cache() if cache else None
        items = list(X)
        feats = extract_features(self.backbone_, items, options=self._options(), cache=store, description="features")
        if not self.tta or not items:
            return feats
        from transferkit.data.augment import views_of

        views = extract_features(self.backbone_, views_of(items, self.backbone_.modality, self.tta, self.seed),
                                 options=self._options(), cache=store, description="test-time views")
        full = np.zeros((len(items) * self.tta, self.backbone_.num_features), np.float32)
        full[views.ok] = views.values
        per_item = full.reshape(self.tta, len(items), -1)[:, feats.ok]  # a view that fails: the original stands in
        ok_views = views.ok.reshape(self.tta, len(items))[:, feats.ok]
        per_item = np.where(ok_views[..., None], per_item, feats.values[None])
        values = np.concatenate([feats.values, *per_item], axis=1)
        return Features(values=values, ok=feats.ok, failed=feats.failed, extracted=feats.extracted + views.extracted,
                        cached=feats.cached + views.cached, precision=feats.precision,
                        seconds=feats.seconds + views.seconds)

    def proba_from_features(self, values: np.ndarray) -> np.ndarray:
        """Class probabilities; with test-time views, the mean over the input and its views."""
        width = self.backbone_.num_features
        if self.tta and values.shape[1] == width * (1 + self.tta):
            chunks = np.split(np.asarray(values), 1 + self.tta, axis=1)
            return np.mean([super(TransferClassifier, self).proba_from_features(c) for c in chunks], axis=0)
        return super().proba_from_features(values)

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "backbone": self.backbone_.name, "head": self.head,
                "class_weighted": self.fit_report_.class_weighted,
                "extract_seconds": round(self.fit_report_.extract_seconds, 2)}

    # -- persistence --------------------------------------------------------------------------------
    def _manifest(self) -> dict[str, Any]:
        report = self.fit_report_
        params = {k: v for k, v in self.get_params().items() if k not in ("cache_dir", "progress", "device")}
        return {
            "strategy": "probe",
            "backbone": {**self.backbone_.describe(), "weights_source": self.weights,
                         "random_seed": self.seed if self.weights == "random" else None},
            "head": {"spec": parse_head(self.head).text, "in_features": self.backbone_.num_features,
                     "choice": report.head_choice},
            "training": {**params, "n_train": report.n_train, "n_val": report.n_val,
                         "class_counts": self.train_class_counts_, "class_weighted": report.class_weighted,
                         "skipped": len(report.skipped), "precision": report.precision},
        }

    def _card_facts(self, manifest: dict[str, Any]) -> tuple[str, list[str], str, str]:
        return (f"transferkit model: {manifest['backbone']['name']} + {manifest['head']['spec']} head",
                [f"- strategy: {manifest['strategy']} (frozen backbone, head trained on its features)",
                 f"- backbone weights sha256: `{manifest['backbone']['weights_id']}`"],
                "examples",
                "Load with `transferkit predict <this folder> FILES…` or `transferkit.load(<this folder>)`.")

    @classmethod
    def _restore(cls, manifest: dict[str, Any], tensors: dict[str, torch.Tensor], path: Path,
                 overrides: dict[str, Any]) -> TransferClassifier:
        info = manifest["backbone"]
        training = manifest.get("training", {})
        saved = {k: training[k] for k in ("head", "class_weight", "val_fraction", "seed", "batch_size", "precision",
                                          "strict", "long_text", "augment", "tta") if k in training}
        clf = cls(backbone=info["name"], weights=info.get("weights_source"), **{**saved, **overrides})
        clf.backbone_ = clf._create_backbone()
        clf._backbone_key = (clf.backbone, clf.weights, clf.long_text)
        if not same_weights(info["weights_id"], clf.backbone_):
            raise BundleError(
                f"'{path}' was trained on backbone '{info['name']}' with weights sha256 {info['weights_id'][:12]}…, "
                f"but the weights on this machine are {clf.backbone_.weights_id[:12]}…; install the same weights")
        clf.backbone_.apply_preprocess_config(info["preprocess"])
        labels = manifest["labels"]
        head = build_head(parse_head(manifest["head"]["spec"]), int(manifest["head"]["in_features"]), len(labels))
        head.load_state_dict({k.removeprefix("head."): v for k, v in tensors.items() if k.startswith("head.")})
        clf.head_ = head.eval()
        clf.classes_ = np.array(labels)
        clf.fit_report_ = FitReport(n_train=training.get("n_train", 0), n_val=training.get("n_val", 0),
                                    head_choice=manifest["head"].get("choice", {}))
        clf.train_class_counts_ = training.get("class_counts", {})
        return clf
