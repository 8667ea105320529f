"""`EnsembleClassifier`: several probes on different backbones, their class probabilities averaged.

    clf = EnsembleClassifier(["all-minilm-l6-v2", "tfidf"]).fit(texts, labels)

Each member is a `TransferClassifier` on one backbone (features cached as usual); the ensemble's
probability is the mean of the members'. Members that err in different ways — a pretrained
embedding and a from-scratch one, two pretrained backbones from different training data — often
make a better model together than either alone, and the ensemble is what `--backbone auto` fits
when validation says so. The bundle holds every member's head and backbone reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from transferkit.adapt.record import to_json as adaptation_json
from transferkit.backbones.contract import InputNotes
from transferkit.cache import FeatureCache
from transferkit.data.dataset import LabelledData
from transferkit.errors import ConfigError, check_is_fitted
from transferkit.estimators.probe import TransferClassifier
from transferkit.estimators.transfer_estimator import (
    Data,
    FitReport,
    Inputs,
    Labels,
    Params,
    TransferEstimator,
    as_labelled_data,
)
from transferkit.features import Features
from transferkit.jsontypes import JSONObject
from transferkit.params import (
    ADAPT_BATCH,
    ADAPT_METHOD,
    BATCH_SIZE,
    CACHE_DIR,
    CLASS_WEIGHT,
    DEVICE,
    ENGINE,
    HEAD,
    LONG_TEXT,
    PRECISION,
    PROGRESS,
    SEED,
    Param,
    Satisfies,
    param,
)

BACKBONES: Param[tuple[str, ...]] = param(
    ("efficientnet_lite0", "hog"), "The members' backbones (two or more of one modality).",
    rules=Satisfies(lambda v: isinstance(v, Sequence) and not isinstance(v, str) and len(v) >= 2
                    and all(isinstance(n, str) and n.strip() for n in v), "a list of two or more backbone names"))


class EnsembleClassifier(TransferEstimator):
    """Probes on several backbones of one modality; predictions are the mean of their probabilities."""

    kind: ClassVar[str] = "ensemble"
    adapts_to_target: ClassVar[bool] = True
    _param_overrides: ClassVar[dict[str, Param[object]]] = {"backbones": BACKBONES}
    _runtime_params: ClassVar[frozenset[str]] = frozenset(
        {"cache_dir", "progress", "device", "batch_size", "engine", "adapt_batch"})

    members_: list[TransferClassifier]

    def __init__(
        self,
        backbones: Sequence[str] = BACKBONES.default,
        *,
        head: str = HEAD.default,
        class_weight: str = CLASS_WEIGHT.default,
        seed: int = SEED.default,
        batch_size: int = BATCH_SIZE.default,
        precision: str = PRECISION.default,
        engine: str = ENGINE.default,
        long_text: str = LONG_TEXT.default,
        cache_dir: str | Path | bool | FeatureCache | None = CACHE_DIR.default,
        progress: bool = PROGRESS.default,
        device: str | None = DEVICE.default,
        adapt_method: str = ADAPT_METHOD.default,
        adapt_batch: bool = ADAPT_BATCH.default,
    ) -> None:
        self.backbones = backbones
        self.head = head
        self.class_weight = class_weight
        self.seed = seed
        self.batch_size = batch_size
        self.precision = precision
        self.engine = engine
        self.long_text = long_text
        self.cache_dir = cache_dir
        self.progress = progress
        self.device = device
        self.adapt_method = adapt_method
        self.adapt_batch = adapt_batch

    def _member(self, backbone: str) -> TransferClassifier:
        spec = self._backbone_spec(backbone)
        member = TransferClassifier(str(spec), head=self.head, class_weight=self.class_weight, seed=self.seed,
                                    batch_size=self.batch_size, precision=self.precision, engine=self.engine,
                                    cache_dir=self.cache_dir, progress=self.progress, device=self.device,
                                    adapt_method=self.adapt_method, adapt_batch=self.adapt_batch,
                                    long_text=self.long_text if _is_text(backbone) else "truncate")
        return member.adopt_backbone_specs(spec)

    @property
    def modality_(self) -> str:
        check_is_fitted(self, "members_")
        return self.members_[0].modality_

    def fit(self, X: Data, y: Labels | None = None, *, X_val: Inputs | None = None,
            y_val: Labels | None = None, X_target: Inputs | None = None) -> EnsembleClassifier:
        """Fit a probe per backbone; with `X_target`, each aligns its own features to the target's."""
        self.validate()
        members = [self._member(name) for name in self.backbones]
        for member in members:
            member.fit(X, y, X_val=X_val, y_val=y_val, X_target=X_target)
        modalities = {m.modality_ for m in members}
        if len(modalities) != 1:
            raise ConfigError(f"an ensemble's members must take the same inputs; got {sorted(modalities)}")
        classes = [list(m.classes_) for m in members]
        if any(c != classes[0] for c in classes):
            raise ConfigError("the members of an ensemble learned different classes (unreadable inputs differ)")
        self.members_ = members
        self.classes_ = members[0].classes_
        self.head_ = torch.nn.Identity()
        first = members[0].fit_report_
        self.fit_report_ = FitReport(
            n_train=first.n_train, n_val=first.n_val,
            skipped={k: v for m in members for k, v in m.fit_report_.skipped.items()},
            extracted=sum(m.fit_report_.extracted for m in members), cached=sum(m.fit_report_.cached for m in members),
            precision=first.precision, extract_seconds=sum(m.fit_report_.extract_seconds for m in members),
            head_choice={m.backbone: m.fit_report_.head_choice.get("C") for m in members},
            class_weighted=first.class_weighted, notes=_merged_notes(m.fit_report_.notes for m in members))
        self.train_class_counts_ = members[0].train_class_counts_
        return self

    def _as_data(self, X: Data, y: Labels | None, what: str) -> LabelledData:
        return as_labelled_data(X, y, what, modality=self.modality_)

    # -- predict ------------------------------------------------------------------------------------
    def features(self, X: Inputs, *, cache: bool = True) -> Features:
        """Every member's features side by side (an input any member cannot read is failed)."""
        check_is_fitted(self, "members_")
        items = list(X)
        parts = [m.features(items, cache=cache) for m in self.members_]
        ok = np.logical_and.reduce([p.ok for p in parts])
        blocks = []
        for p in parts:
            full = np.zeros((len(items), p.values.shape[1] if p.values.ndim == 2 else 0), np.float32)
            full[p.ok] = p.values
            blocks.append(full[ok])
        failed: dict[int, str] = {}
        for p in parts:
            for i, reason in p.failed.items():
                failed.setdefault(i, reason)
        return Features(values=np.concatenate(blocks, axis=1), ok=ok, failed=dict(sorted(failed.items())),
                        extracted=sum(p.extracted for p in parts), cached=sum(p.cached for p in parts),
                        precision=parts[0].precision, seconds=sum(p.seconds for p in parts))

    def _widths(self) -> list[int]:
        return [m.backbone_.num_features * (1 + m.tta) for m in self.members_]

    def proba_from_features(self, values: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "members_")
        cuts = np.cumsum(self._widths())[:-1]
        chunks = np.split(np.asarray(values), cuts, axis=1)
        return np.mean([m.proba_from_features(c) for m, c in zip(self.members_, chunks, strict=True)], axis=0)

    def summary(self) -> JSONObject:
        out = {**super().summary(), "backbone": " | ".join(m.backbone_.name for m in self.members_),
               "members": [m.backbone_.name for m in self.members_], "head": self.head}
        adapted = [record for m in self.members_ if (record := getattr(m, "adaptation_", None))]
        if adapted:
            out["adaptation"] = {**adaptation_json(adapted[0]), "members": "each member aligned its own features"}
        return out

    # -- persistence --------------------------------------------------------------------------------
    def _manifest(self) -> JSONObject:
        members = [m._manifest() for m in self.members_]
        return {
            "strategy": "probe",
            "backbone": {"name": " | ".join(m.backbone_.name for m in self.members_), "modality": self.modality_,
                         "weights_id": "ensemble", "preprocess": {}},
            "head": {"spec": self.head, "combine": "mean of probabilities"},
            "members": members,
            "training": {"backbones": list(self.backbones), "head": self.head, "class_weight": self.class_weight,
                         "seed": self.seed, "batch_size": self.batch_size, "precision": self.precision,
                         "long_text": self.long_text, "adapt_method": self.adapt_method,
                         "n_train": self.fit_report_.n_train,
                         "n_val": self.fit_report_.n_val, "class_counts": self.train_class_counts_},
        }

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {f"member{i}.{k}": v for i, m in enumerate(self.members_) for k, v in m._tensors().items()}

    def _card_facts(self, manifest: JSONObject) -> tuple[str, list[str], str, str]:
        names = [m["backbone"]["name"] for m in manifest["members"]]
        return (f"transferkit model: an ensemble of {len(names)} probes ({', '.join(names)})",
                ["- strategy: probe on each backbone, class probabilities averaged"]
                + [f"- member {i}: {m['backbone']['name']} (weights sha256 `{m['backbone']['weights_id']}`)"
                   for i, m in enumerate(manifest["members"])],
                "examples",
                "Load with `transferkit predict <this folder> FILES…` or `transferkit.load(<this folder>)`.")

    @classmethod
    def _restore(cls, manifest: JSONObject, tensors: dict[str, torch.Tensor], path: Path,
                 overrides: Params) -> EnsembleClassifier:
        training = manifest.get("training", {})
        saved = {k: training[k] for k in ("head", "class_weight", "seed", "batch_size", "precision", "long_text",
                                          "adapt_method") if k in training}
        clf = cls(list(training.get("backbones", [])), **{**saved, **overrides})
        members = []
        for i, part in enumerate(manifest["members"]):
            prefix = f"member{i}."
            own = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
            member_manifest = {**part, "labels": manifest["labels"]}
            members.append(TransferClassifier._restore(member_manifest, own, path, dict(overrides)))
        clf.members_ = members
        clf.classes_ = np.array(manifest["labels"])
        clf.head_ = torch.nn.Identity()
        clf.fit_report_ = FitReport(n_train=training.get("n_train", 0), n_val=training.get("n_val", 0))
        clf.train_class_counts_ = training.get("class_counts", {})
        return clf


def _is_text(backbone: str) -> bool:
    from transferkit.backbones import get_entry

    entry = get_entry(backbone)
    return entry is not None and entry.modality == "text"


def _merged_notes(notes: Iterable[InputNotes]) -> InputNotes:
    """The members' input notes in one record (a later member's value for a key wins, as before)."""
    merged: InputNotes = {}
    for n in notes:
        merged.update(n)
    return merged
