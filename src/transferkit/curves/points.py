"""One point of the curve: features extracted once per backbone, a linear probe fitted on a point's
rows, LP-FT on a point's examples within a time budget, and the point's test metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from transferkit.backbones.spec import BackboneSpec
from transferkit.errors import ConfigError, DataError
from transferkit.params import ENGINE

if TYPE_CHECKING:
    from pathlib import Path

    from transferkit.cache import FeatureCache

    #: what `cache_dir=` takes (see `transferkit.cache.resolve_cache`)
    CacheArg = FeatureCache | str | Path | bool | None
    from transferkit.data.dataset import LabelledData
    from transferkit.heads import HeadChoice

#: minutes of fine-tuning `curve` may spend when fine-tuning is asked for and no budget is given
DEFAULT_FINETUNE_BUDGET = 10.0
#: training images per second assumed before the first fine-tuned point has been measured
#: (the figures `--strategy auto` uses: EfficientNet-Lite0, forward + backward)
FINETUNE_IMAGES_PER_SECOND = {"cpu": 15.0, "gpu": 400.0}


@dataclass
class Extracted:
    backbone: str
    values: np.ndarray  # [n_items, D]; rows of unreadable items are zeros
    ok: np.ndarray
    failed: dict[int, str]
    seconds: float
    cached: int
    precision: str
    #: adapted transfer's entry: the target inputs read (its own rows are the transfer's)
    target_read: int = 0


def extract(spec: BackboneSpec, weights: str | None, data: LabelledData, indices: list[int], *, seed: int,
             batch_size: int, precision: str, cache_dir: CacheArg, progress: bool,
             engine: str = ENGINE.default) -> Extracted:
    from transferkit.backbones import build_backbone
    from transferkit.cache import resolve_cache
    from transferkit.features import ExtractOptions, extract_features

    kwargs: dict[str, int] = {"seed": seed} if weights == "random" else {}
    backbone = build_backbone(spec, weights=weights, **kwargs)
    if backbone.modality != data.modality:
        raise ConfigError(f"backbone '{spec}' takes {backbone.modality} inputs; this is {data.modality} data")
    items = [data.items[i] for i in indices]
    feats = extract_features(backbone, items, options=ExtractOptions(batch_size=batch_size, precision=precision,
                                                                     progress=progress, engine=engine),
                             cache=resolve_cache(cache_dir), description=f"features ({backbone.name})")
    values = np.zeros((len(data.items), backbone.num_features), np.float32)
    ok = np.zeros(len(data.items), bool)
    rows = np.asarray(indices)[feats.ok]
    values[rows], ok[rows] = feats.values, True
    failed = {indices[i]: reason for i, reason in feats.failed.items()}
    return Extracted(backbone.name, values, ok, failed, feats.seconds, feats.cached, feats.precision)


def adapted(transfer: Extracted, model: tuple[BackboneSpec, str | None], test: list[int], pool: list[int],
            target: Sequence[object], method: str, *, seed: int, batch_size: int, precision: str, cache_dir: CacheArg,
            progress: bool, engine: str = ENGINE.default) -> tuple[Extracted, str]:
    """The transfer features with the test rows aligned: the map from TARGET's features (extracted here) to
    the pool's, fitted once (`adapt.fit_alignment`; `auto` by `fit`'s rule). Returns them and a note."""
    from transferkit.adapt import auto_outcome, fit_alignment, resolve_method
    from transferkit.backbones import build_backbone
    from transferkit.cache import resolve_cache
    from transferkit.features import ExtractOptions, extract_features

    if method in ("self-training", "mcc", "none"):
        raise ConfigError(f"the curve aligns features (auto, standardize, coral); got --adapt-method {method}")
    backbone = build_backbone(model[0], weights=model[1], **({"seed": seed} if model[1] == "random" else {}))
    feats = extract_features(backbone, list(target), options=ExtractOptions(batch_size=batch_size, precision=precision,
                                                                          progress=progress, engine=engine),
                             cache=resolve_cache(cache_dir), description=f"target features ({backbone.name})")
    if not feats.ok.any():
        raise DataError(f"none of the {len(target)} target inputs could be read; first error: "
                        f"{next(iter(feats.failed.values()), 'none given')}")
    source = transfer.values[[i for i in pool if transfer.ok[i]]].astype(np.float64)
    tvalues = np.asarray(feats.values, np.float64)
    applied = resolve_method(method)
    why = f"{applied}, as asked"
    alignment = fit_alignment(source, tvalues, applied, blocks=backbone.feature_blocks(), seed=seed)
    if method == "auto" and alignment is not None:
        moved, why = auto_outcome(alignment)
        applied = alignment.method if moved else "none"
    values = transfer.values.copy()
    if applied != "none" and alignment is not None:
        rows = [i for i in test if transfer.ok[i]]
        values[rows] = alignment.apply(values[rows])
    note = (f"adapted transfer: the transfer heads, the test inputs' features aligned to the pool's by the map fitted "
            f"on {int(feats.ok.sum())} target inputs ({len(feats.failed)} unreadable); {why} → "
            f"{'nothing aligned (the same points as transfer)' if applied == 'none' else applied}")
    return (Extracted(transfer.backbone, values, transfer.ok, transfer.failed, feats.seconds, feats.cached,
                      transfer.precision, target_read=int(feats.ok.sum())), note)


def probe_point(feats: Extracted, y: np.ndarray, fit_idx: list[int], val_idx: list[int], test: list[int],
                n_classes: int, seed: int) -> tuple[np.ndarray, HeadChoice]:
    """Predicted class indices of the test split from a linear head fitted on this point's rows (classes
    weighted by the counts of all of the point's labels, those that choose C included)."""
    from transferkit.heads import class_weights, parse_head, train_probe
    from transferkit.runtime import threads_limited

    # one BLAS thread: these problems are small, and on a busy 2-core machine OpenBLAS's own threads
    # made scikit-learn's L-BFGS 60x slower (7.5 s against 0.13 s for 200 x 1280 features)
    with threads_limited(1, "blas"):
        probe = train_probe(parse_head("linear"), feats.values[fit_idx], y[fit_idx], feats.values[val_idx],
                            y[val_idx], n_classes,
                            class_weight=class_weights(y[fit_idx + val_idx], n_classes, "auto"), seed=seed)
    return probe.predict(feats.values[test]), probe.choice


class PointMetrics(TypedDict):
    """A curve point's test metrics (the columns of a curve row that are scores)."""

    accuracy: float
    balanced_accuracy: float
    macro_f1: float


def metrics(classes: list[str], y_true: np.ndarray, y_pred: np.ndarray) -> PointMetrics:
    from transferkit.metrics import classification_metrics

    m = classification_metrics([classes[i] for i in y_true], [classes[i] if i >= 0 else "" for i in y_pred], classes)
    return {"accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"], "macro_f1": m["macro_f1"]}


@dataclass
class FinetuneBudget:
    """Which fine-tuned points fit in the budget: estimated from the rate measured so far."""

    minutes: float
    epochs: int
    device: str
    spent: float = 0.0
    images: float = 0.0  # training images × epochs done so far

    def rate(self) -> float:
        if self.images and self.spent:
            return self.images / self.spent
        return FINETUNE_IMAGES_PER_SECOND[self.device]

    def estimate(self, n_train: int) -> float:
        return self.epochs * n_train / self.rate()

    def fits(self, n_train: int) -> bool:
        return self.spent + self.estimate(n_train) <= self.minutes * 60.0

    def record(self, n_train: int, seconds: float) -> None:
        self.spent += seconds
        self.images += self.epochs * n_train


def device_kind() -> str:
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def finetune_point(data: LabelledData, subset: list[int], test: list[int], classes: list[str], *,
                    pretrained: BackboneSpec, weights: str | None, seed: int, epochs: int, batch_size: int,
                    precision: str, cache_dir: CacheArg) -> np.ndarray:
    """LP-FT on the point's own labels (no validation held out: every method sees the same k per class;
    the last epoch is kept), then the test split's predicted class indices."""
    from transferkit.estimators.finetuned import FinetunedClassifier
    from transferkit.finetune.config import FinetuneConfig
    from transferkit.finetune.trainer import quiet_lightning

    train = data.subset(subset)
    clf = FinetunedClassifier(str(pretrained), weights=weights, seed=seed, batch_size=min(batch_size, 16),
                              precision=precision, training=FinetuneConfig(epochs=epochs), progress=False,
                              cache_dir=cache_dir).adopt_backbone_specs(pretrained)
    with quiet_lightning():
        clf.fit(train)
    feats = clf.features([data.items[i] for i in test], cache=False)
    index = {c: i for i, c in enumerate(classes)}
    predicted = np.full(len(test), -1, np.int64)  # an input unreadable now is scored as wrong
    labels = clf.classes_[np.argmax(clf.proba_from_features(feats.values), axis=1)]
    predicted[feats.ok] = [index[str(c)] for c in labels]
    return predicted
