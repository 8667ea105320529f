"""`TransferClassifier`: the scikit-learn style entry point for feature transfer.

    clf = TransferClassifier(backbone="efficientnet_lite0").fit(paths, labels)
    clf.predict(paths); clf.predict_proba(paths); clf.save("runs/x"); TransferClassifier.load("runs/x")

`fit` computes the frozen backbone's features once (cached on disk, so a second fit on the same
data extracts nothing), then trains the head on them, choosing its regularisation on a
validation split carved from the training data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferkit.backbones.base import Backbone
from transferkit.data.dataset import LabelledData
from transferkit.errors import BundleError, ConfigError, DataError, InputError, check_is_fitted
from transferkit.cache import FeatureCache, resolve_cache
from transferkit.features import ExtractOptions, Features, extract_features
from transferkit.heads import HeadSpec, build_head, class_weights, fit_head, parse_head


@dataclass(frozen=True)
class Constraint:
    """One declared parameter constraint, shared by the Python API and the CLI."""

    name: str
    check: Any
    expected: str

    def validate(self, value: Any) -> None:
        if not self.check(value):
            raise ConfigError(f"{self.name} must be {self.expected}; got {value!r}")


PARAMETER_CONSTRAINTS: tuple[Constraint, ...] = (
    Constraint("backbone", lambda v: isinstance(v, str) and bool(v), "a backbone name (see `transferkit models`)"),
    Constraint("head", lambda v: isinstance(v, str) and bool(v), "a head spec such as 'linear' or 'mlp'"),
    Constraint("class_weight", lambda v: v in ("auto", "balanced", "none"), "'auto', 'balanced' or 'none'"),
    Constraint("val_fraction", lambda v: isinstance(v, int | float) and 0 <= v < 0.9, "a fraction in [0, 0.9)"),
    Constraint("seed", lambda v: isinstance(v, int) and v >= 0, "a non-negative integer"),
    Constraint("batch_size", lambda v: isinstance(v, int) and v > 0, "a positive integer"),
    Constraint("precision", lambda v: v in ("auto", "bf16", "fp32"), "'auto', 'bf16' or 'fp32'"),
)


@dataclass
class FitReport:
    """What happened during `fit`, for the user: counts, skips, cache use, choices made."""

    n_train: int = 0
    n_val: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    extracted: int = 0
    cached: int = 0
    precision: str = "fp32"
    extract_seconds: float = 0.0
    head_choice: dict[str, Any] = field(default_factory=dict)
    class_weighted: bool = False


class TransferClassifier:
    """Frozen pretrained backbone + a head trained on its cached features.

    Parameters are stored unchanged and validated in `fit` (scikit-learn's contract).
    `cache_dir=None` uses the default cache folder; `cache_dir=False` disables the cache.
    """

    # learned state, set by `fit` or `load` (declared here for the type checker; absent until then)
    backbone_: Backbone
    head_: torch.nn.Module
    classes_: np.ndarray
    fit_report_: FitReport
    train_class_counts_: dict[str, int]
    manifest_: dict[str, Any]
    _backbone_key: tuple[str, str | None]

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
        cache_dir: str | Path | bool | None = None,
        strict: bool = False,
        progress: bool = True,
        device: str | None = None,
        backbone_options: dict[str, Any] | None = None,
    ) -> None:
        self.backbone = backbone
        self.weights = weights
        self.head = head
        self.class_weight = class_weight
        self.val_fraction = val_fraction
        self.seed = seed
        self.batch_size = batch_size
        self.precision = precision
        self.cache_dir = cache_dir
        self.strict = strict
        self.progress = progress
        self.device = device
        #: extra keyword arguments for the backbone factory (e.g. {"long_text": "chunk"} for text)
        self.backbone_options = backbone_options

    # -- parameters -----------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone,
            "weights": self.weights,
            "head": self.head,
            "class_weight": self.class_weight,
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "precision": self.precision,
            "strict": self.strict,
        }

    def _validate_params(self) -> HeadSpec:
        params = self.get_params()
        for constraint in PARAMETER_CONSTRAINTS:
            constraint.validate(params[constraint.name])
        return parse_head(self.head)

    def _cache(self) -> FeatureCache | None:
        return resolve_cache(self.cache_dir)

    def _options(self) -> ExtractOptions:
        return ExtractOptions(
            batch_size=self.batch_size, precision=self.precision, progress=self.progress, device=self.device
        )

    # -- fit ------------------------------------------------------------------------------------
    def fit(
        self,
        X: Sequence[Any] | LabelledData,
        y: Sequence[Any] | None = None,
        *,
        X_val: Sequence[Any] | None = None,
        y_val: Sequence[Any] | None = None,
    ) -> TransferClassifier:
        """Extract features of `X` (and `X_val`), train the head, and return `self`.

        Without `X_val`, a stratified `val_fraction` of `X` selects the head's settings; the
        final linear head is then refitted on all of `X`.
        """
        spec = self._validate_params()
        data = _as_data(X, y, "training data")
        data.validate_for_training()
        val = _as_data(X_val, y_val, "validation data") if X_val is not None else None
        torch.manual_seed(self.seed)
        self.backbone_ = self.backbone_ if _same_backbone(self) else self._create_backbone()
        self._backbone_key = (self.backbone, self.weights)

        items = list(data.items) + (list(val.items) if val else [])
        feats = extract_features(self.backbone_, items, options=self._options(), cache=self._cache(),
                                 description=f"features ({self.backbone_.name})")
        report = FitReport(extracted=feats.extracted, cached=feats.cached, precision=feats.precision,
                           extract_seconds=feats.seconds)
        report.skipped = {str(items[i]): reason for i, reason in feats.failed.items()}
        if feats.failed and self.strict:
            first = next(iter(report.skipped.values()))
            raise DataError(f"{len(feats.failed)} input(s) could not be read (--strict): {first}")
        if not feats.ok.any():
            raise DataError(
                f"{data.source}: none of the {len(items)} inputs could be read; first error: "
                f"{next(iter(report.skipped.values()), 'unknown')}"
            )

        labels = np.array([str(v) for v in data.labels] + ([str(v) for v in val.labels] if val else []))
        values = np.zeros((len(items), feats.values.shape[1]), np.float32)
        values[feats.ok] = feats.values
        n_train = len(data.items)
        train_ok = np.flatnonzero(feats.ok[:n_train])
        kept = data.subset(train_ok.tolist())
        kept.source = data.source
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
        weights = class_weights(y_all[tr_idx], len(self.classes_), self.class_weight)
        head, choice = fit_head(
            spec, values[tr_idx], y_all[tr_idx], values[va_idx], y_all[va_idx], len(self.classes_),
            weights=weights, seed=self.seed,
        )
        self.head_ = head
        report.n_train, report.n_val = len(tr_idx), len(va_idx)
        report.head_choice, report.class_weighted = choice, weights is not None
        self.fit_report_ = report
        self.train_class_counts_ = kept.class_counts()
        return self

    def _create_backbone(self) -> Backbone:
        from transferkit.backbones import create_backbone

        kwargs: dict[str, Any] = {"seed": self.seed} if self.weights == "random" else {}
        return create_backbone(self.backbone, weights=self.weights, **kwargs, **(self.backbone_options or {}))

    # -- predict --------------------------------------------------------------------------------
    def features(self, X: Sequence[Any], *, cache: bool = True) -> Features:
        check_is_fitted(self, "head_")
        return extract_features(self.backbone_, list(X), options=self._options(),
                                cache=self._cache() if cache else None, description="features")

    def proba_from_features(self, values: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "head_")
        with torch.no_grad():
            logits = self.head_(torch.from_numpy(np.asarray(values, np.float32)))
        return torch.softmax(logits.float(), dim=1).numpy()

    def predict_proba(self, X: Sequence[Any]) -> np.ndarray:
        """Class probabilities [n, n_classes] (columns in `classes_` order). Unreadable input raises."""
        feats = self.features(X)
        if feats.failed:
            i, reason = next(iter(feats.failed.items()))
            raise InputError(f"input {i} could not be read: {reason}")
        return self.proba_from_features(feats.values)

    def predict(self, X: Sequence[Any]) -> np.ndarray:
        proba = self.predict_proba(X)  # first: raises NotFittedError before `classes_` is touched
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X: Sequence[Any], y: Sequence[Any]) -> float:
        return float(np.mean(self.predict(X) == np.array([str(v) for v in y])))

    def evaluate(self, X: Sequence[Any] | LabelledData, y: Sequence[Any] | None = None) -> dict[str, Any]:
        """Metrics on labelled data (unreadable inputs are skipped and counted in `skipped`)."""
        from transferkit.evaluate import score_probabilities

        data = _as_data(X, y, "evaluation data")
        feats = self.features(data.items)
        true = [str(label) for label, ok in zip(data.labels, feats.ok, strict=True) if ok]
        metrics = score_probabilities(self.classes_, true, self.proba_from_features(feats.values))
        metrics["skipped"] = {str(data.items[i]): r for i, r in feats.failed.items()}
        return metrics

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | Path, *, metrics: dict[str, Any] | None = None, overwrite: bool = False,
             extra: dict[str, Any] | None = None) -> Path:
        """Write a bundle (safetensors + transferkit.json + model card) atomically."""
        from transferkit.bundle import save_bundle

        check_is_fitted(self, "head_")
        spec = parse_head(self.head)
        manifest = {
            "task": "classification",
            "strategy": "probe",
            "labels": [str(c) for c in self.classes_],
            "backbone": {**self.backbone_.describe(), "weights_source": self.weights,
                         "random_seed": self.seed if self.weights == "random" else None},
            "head": {"spec": spec.text, "in_features": self.backbone_.num_features,
                     "choice": self.fit_report_.head_choice},
            "training": {**self.get_params(), "n_train": self.fit_report_.n_train,
                         "n_val": self.fit_report_.n_val, "class_counts": self.train_class_counts_,
                         "class_weighted": self.fit_report_.class_weighted,
                         "skipped": len(self.fit_report_.skipped), "precision": self.fit_report_.precision},
            "metrics": metrics or {},
            **(extra or {}),
        }
        tensors = {f"head.{k}": v for k, v in self.head_.state_dict().items()}
        return save_bundle(path, manifest, tensors, _model_card(manifest), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> TransferClassifier:
        """Load a bundle; the backbone's weights must be the ones it was trained with (sha256)."""
        from transferkit.bundle import load_bundle, read_manifest

        kind = read_manifest(path)
        if kind.get("kind") == "tabular":  # a multimodal table model (transferkit.tabular)
            from transferkit.tabular import TabularTransferClassifier

            return TabularTransferClassifier.load(path, **overrides)  # type: ignore[return-value]
        if kind.get("strategy", "probe") != "probe":
            raise BundleError(f"'{path}' holds a {kind['strategy']} model; load it with transferkit.load(path)")
        manifest, tensors = load_bundle(path)
        info = manifest["backbone"]
        training = manifest.get("training", {})
        params = {k: training[k] for k in ("head", "class_weight", "val_fraction", "seed", "batch_size",
                                            "precision", "strict") if k in training}
        clf = cls(backbone=info["name"], weights=info.get("weights_source"), **{**params, **overrides})
        clf.backbone_ = clf._create_backbone()
        clf._backbone_key = (clf.backbone, clf.weights)
        if clf.backbone_.weights_id != info["weights_id"]:
            raise BundleError(
                f"'{path}' was trained on backbone '{info['name']}' with weights sha256 {info['weights_id'][:12]}…, "
                f"but the weights on this machine are {clf.backbone_.weights_id[:12]}…; install the same weights"
            )
        clf.backbone_.apply_preprocess_config(info["preprocess"])
        spec = parse_head(manifest["head"]["spec"])
        labels = manifest["labels"]
        head = build_head(spec, int(manifest["head"]["in_features"]), len(labels))
        head.load_state_dict({k.removeprefix("head."): v for k, v in tensors.items() if k.startswith("head.")})
        clf.head_ = head.eval()
        clf.classes_ = np.array(labels)
        clf.fit_report_ = FitReport(n_train=training.get("n_train", 0), n_val=training.get("n_val", 0),
                                    head_choice=manifest["head"].get("choice", {}))
        clf.train_class_counts_ = training.get("class_counts", {})
        clf.manifest_ = manifest
        return clf


def _same_backbone(clf: TransferClassifier) -> bool:
    return getattr(clf, "_backbone_key", None) == (clf.backbone, clf.weights) and hasattr(clf, "backbone_")


def _as_data(X: Any, y: Sequence[Any] | None, what: str) -> LabelledData:
    if isinstance(X, LabelledData):
        return X
    if isinstance(X, str | Path) and y is None:
        from transferkit.data import load_dataset

        return load_dataset(X)
    if y is None:
        raise DataError(f"{what}: labels are missing; pass fit(X, y) or a LabelledData / folder path")
    items = list(X)
    return LabelledData(items=items, labels=[str(v) for v in y], source=what)


def _model_card(manifest: dict[str, Any]) -> str:
    from transferkit.bundle import model_card

    return model_card(
        manifest,
        title=f"transferkit model: {manifest['backbone']['name']} + {manifest['head']['spec']} head",
        facts=[f"- strategy: {manifest['strategy']} (frozen backbone, head trained on its features)",
               f"- backbone weights sha256: `{manifest['backbone']['weights_id']}`"],
        unit="examples",
        usage="Load with `transferkit predict <this folder> FILES…` or "
              "`transferkit.TransferClassifier.load(<this folder>)`.",
    )
