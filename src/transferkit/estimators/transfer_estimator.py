"""The estimator contract every transferkit model meets, on scikit-learn's model.

- `__init__` stores its keyword arguments unchanged, nothing else; `get_params` / `set_params` are
  introspected from the signature (scikit-learn's `BaseEstimator`), so `sklearn.base.clone` works
  on every estimator and keeps every parameter.
- Each parameter is declared once, as a `transferkit.params.Param` (default, help, rule, where it
  applies): the typed constructor takes its defaults from them, and the class's scikit-learn
  `_parameter_constraints` are derived from them when the class is defined (`_param_overrides`
  names the declarations of parameters that are the class's own); `fit` checks them with
  scikit-learn's `_validate_params` (`validate()`), and so does the CLI, which builds the very
  same estimator before it reads any data.
- Learned state ends in `_`; using an estimator before `fit` raises `NotFittedError` naming it.
- One prediction path: `features(X)` (frozen encoders, cached) → `proba_from_features(values)`
  (the head). `predict`, `predict_proba`, `score` and `evaluate` are written once, here.
- `save(path)` / `cls.load(path)` are templates: the base writes and reads the bundle and the part
  of its manifest every model shares; a class adds what is its own (`_manifest`, `_tensors`,
  `_card_facts`, `_restore`). The manifest key `estimator` says which class reads a bundle
  (`transferkit.load` dispatches on it).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self, TypeAlias

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

from transferkit.backbones.contract import InputNotes
from transferkit.backbones.spec import BackboneSpec, parse_backbone
from transferkit.data.dataset import LabelledData
from transferkit.errors import BundleError, ConfigError, DataError, InputError, TransferkitError, check_is_fitted
from transferkit.features import Features
from transferkit.heads import HeadChoice
from transferkit.jsontypes import JSONObject
from transferkit.metrics import Metrics
from transferkit.params import Param, SklearnConstraint, constraints_of
from transferkit.ranking.transferability import validate_parameters

# -- parameter constraints -------------------------------------------------------------------------
# Declared once, in `transferkit.params`: each constructor parameter's `Param` (default, help, rule,
# where it applies); a class's `_parameter_constraints` are derived from its signature on definition.


# -- what estimators take ------------------------------------------------------------------------

#: raw inputs as a backbone's `load` takes them (paths, strings, images, waveforms, a table's rows):
#: estimators only pass them through, to the backbone or the table's encoders
Inputs: TypeAlias = Sequence[object]
#: class labels (each read as `str(label)`)
Labels: TypeAlias = Sequence[object]
#: what `fit` and `evaluate` take: inputs (with labels), a `LabelledData`, or a folder / table path (alone)
Data: TypeAlias = Inputs | LabelledData | str | Path
#: constructor parameters by name, set by keyword (scikit-learn's `get_params` / `set_params` contract: each is
#: checked against its declaration, not by the type checker)
Params: TypeAlias = dict[str, Any]


# -- what fit reports ------------------------------------------------------------------------------


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
    #: what validation chose for the head (`heads.HeadChoice`, or a subtype's record: the probe's views,
    #: LP-FT's start, a fusion head's gates); an ensemble's: each member's C by backbone
    head_choice: HeadChoice | dict[str, float | None] = field(default_factory=dict)
    class_weighted: bool = False
    #: what preprocessing did to the inputs (text: truncation), from `Backbone.input_notes`
    notes: InputNotes = field(default_factory=lambda: InputNotes())
    #: augmented views of training inputs the head was also trained on
    augmented: int = 0
    #: the engine extraction ran on ("cache" when every feature was cached), and what it reported
    engine: str = "cache"
    engine_notes: list[str] = field(default_factory=list)


# -- the bundle's estimator key --------------------------------------------------------------------


def estimator_kind(manifest: JSONObject) -> str:
    """Which estimator reads a bundle: its `estimator` key (older bundles: `kind` / `strategy`)."""
    kind = manifest.get("estimator")
    if kind is None:
        if manifest.get("kind") == "tabular":
            kind = "tabular"
        else:
            kind = "finetuned" if manifest.get("strategy") == "finetune" else "probe"
    return str(kind)


def as_labelled_data(X: Data, y: Labels | None, what: str, *, modality: str = "image") -> LabelledData:
    """`LabelledData` from (inputs, labels), a `LabelledData`, or a folder / table path without labels."""
    if isinstance(X, LabelledData):
        return X
    if isinstance(X, str | Path) and y is None:
        from transferkit.data import load_dataset

        return load_dataset(X, modality=modality)
    if y is None:
        raise DataError(f"{what}: labels are missing; pass fit(X, y) or a LabelledData / folder path")
    if isinstance(X, str | Path):
        raise DataError(f"{what}: '{X}' is a folder or table path, which carries its own labels; pass it without y, "
                        "or pass the inputs themselves with y")
    items = list(X)
    return LabelledData(items=items, labels=[str(v) for v in y], source=what, modality=modality)


MANIFEST_NAME = "transferkit.json"


def _head_classes(tensors: dict[str, torch.Tensor]) -> int | None:
    """How many classes the saved head predicts: the length of its last layer's bias."""
    import re

    biases = [(int(m.group(1)), key) for key in tensors
              if (m := re.search(r"head\.(\d+)\.bias$", key)) is not None]
    return int(tensors[max(biases)[1]].shape[0]) if biases else None


# -- the contract ----------------------------------------------------------------------------------


class TransferEstimator(ClassifierMixin, BaseEstimator):
    """Base of every transferkit classifier (probe, table, fine-tuned)."""

    #: the bundle manifest's `estimator` value for this class
    kind: ClassVar[str]
    #: `fit(X_target=…)` adapts the model to unlabelled target inputs (`fit --adapt-to`)
    adapts_to_target: ClassVar[bool] = False
    #: `fit` writes into its run folder as it trains (checkpoints, run.json with `fit(run_record=…)`):
    #: `save` then completes that folder rather than refusing it
    writes_run_folder: ClassVar[bool] = False
    #: what each `__init__` parameter accepts, in scikit-learn's format, checked by its `_validate_params`:
    #: derived from the parameters' declarations (`transferkit.params`) when a subclass is defined
    _parameter_constraints: ClassVar[dict[str, list[SklearnConstraint]]] = {}
    #: declarations of this class's own parameters (those `params.ESTIMATOR_PARAMS` does not hold, or holds
    #: with another rule)
    _param_overrides: ClassVar[dict[str, Param[object]]] = {}
    #: parameters `load(path, **overrides)` may set: how to run, never what was learned
    _runtime_params: ClassVar[frozenset[str]] = frozenset(
        {"cache_dir", "progress", "device", "batch_size", "engine"})

    # learned state (declared for the type checker; absent until fit or load)
    classes_: np.ndarray
    head_: torch.nn.Module
    fit_report_: FitReport
    train_class_counts_: dict[str, int]
    manifest_: JSONObject

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls._parameter_constraints = constraints_of(cls, cls._param_overrides)

    # -- parameters ---------------------------------------------------------------------------------
    def validate(self) -> Self:
        """Check every parameter against its declared constraint (scikit-learn's `_validate_params`); a
        `ConfigError` names the first bad one."""
        validate_parameters(self)
        self._validate_combination()
        return self

    def _validate_combination(self) -> None:
        """Checks that involve several parameters (override where there are any)."""

    # -- backbone names -----------------------------------------------------------------------------
    def adopt_backbone_specs(self, *specs: BackboneSpec) -> Self:
        """Backbone names the caller has parsed already (the CLI parses `--backbone` once, in `options`).

        A backbone parameter stays text (what `get_params`, `clone` and the bundle hold); `fit` reads the
        spec adopted for a parameter's text (`str(spec)`) instead of parsing that text again.
        """
        parsed = self.__dict__.setdefault("_parsed_backbones", {})
        parsed.update({str(spec): spec for spec in specs})
        return self

    def _backbone_spec(self, text: str) -> BackboneSpec:
        """A backbone parameter's text → its spec: the one adopted, or parsed here (the Python API's boundary),
        once per text."""
        parsed: dict[str, BackboneSpec] = self.__dict__.setdefault("_parsed_backbones", {})
        if text not in parsed:
            parsed[text] = parse_backbone(text)
        return parsed[text]

    # -- fit ----------------------------------------------------------------------------------------
    @abstractmethod
    def fit(self, X: Data, y: Labels | None = None, *, X_val: Inputs | None = None,
            y_val: Labels | None = None) -> Self:
        """Learn from (X, y), choosing settings on (X_val, y_val) when given; returns `self`."""

    def training_rate(self, X: Inputs, n_classes: int) -> float | None:
        """Examples per second this estimator would train its network at here (`--strategy auto`'s
        estimate); None for an estimator that trains no network, only a head on cached features."""
        return None

    @property
    @abstractmethod
    def modality_(self) -> str:
        """'image', 'text', 'audio' or 'table': what `predict` takes."""

    # -- predict ------------------------------------------------------------------------------------
    @abstractmethod
    def features(self, X: Inputs, *, cache: bool = True) -> Features:
        """What the head sees for each input (unreadable inputs are reported in `failed`, not raised)."""

    def scoring_head(self) -> torch.nn.Module:
        """What maps `features(X).values` to logits: the head, after any feature alignment the model
        carries (`--adapt-to`); the exported graph uses the same module."""
        check_is_fitted(self, "head_")
        return self.head_

    def proba_from_features(self, values: np.ndarray) -> np.ndarray:
        """Class probabilities [n, n_classes] (columns in `classes_` order) from `features(X).values`."""
        check_is_fitted(self, "head_")
        with torch.no_grad():
            logits = self.scoring_head()(torch.from_numpy(np.asarray(values, np.float32)))
        return torch.softmax(logits.float(), dim=1).numpy()

    def predict_proba(self, X: Inputs) -> np.ndarray:
        """Class probabilities [n, n_classes] in `classes_` order. An unreadable input raises `InputError`."""
        feats = self.features(X)
        if feats.failed:
            i, reason = next(iter(feats.failed.items()))
            raise InputError(f"input {i} could not be read: {reason}")
        return self.proba_from_features(feats.values)

    def predict(self, X: Inputs) -> np.ndarray:
        proba = self.predict_proba(X)  # first: raises NotFittedError before `classes_` is touched
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X: Inputs, y: Labels, sample_weight: Sequence[float] | np.ndarray | None = None) -> float:
        """Accuracy of `predict(X)` against `y` (labels compared as strings, as `fit` stores them)."""
        hits = self.predict(X) == np.array([str(v) for v in y])
        return float(np.average(hits, weights=sample_weight))

    def evaluate(self, X: Data, y: Labels | None = None) -> Metrics:
        """Metrics on labelled data; unreadable inputs are skipped and listed in `skipped`."""
        from transferkit.metrics import score_probabilities

        data = self._as_data(X, y, "evaluation data")
        feats = self.features(data.items)
        true = [str(label) for label, ok in zip(data.labels, feats.ok, strict=True) if ok]
        names = [str(item) for item, ok in zip(data.items, feats.ok, strict=True) if ok]
        metrics = score_probabilities(self.classes_, true, self.proba_from_features(feats.values), names)
        metrics["skipped"] = {str(data.items[i]): reason for i, reason in feats.failed.items()}
        columns = self._evaluation_columns()
        if columns is not None:
            metrics["columns"] = columns
        return metrics

    def _evaluation_columns(self) -> Mapping[str, Mapping[str, object]] | None:
        """What `evaluate` adds for a table: what each column met (None for other kinds of model)."""
        return None

    def _as_data(self, X: Data, y: Labels | None, what: str) -> LabelledData:
        return as_labelled_data(X, y, what, modality=self.modality_)

    # -- the summary a fit command shows ------------------------------------------------------------
    def summary(self) -> JSONObject:
        """What was fitted, as plain values (the CLI prints it; `--json` dumps it)."""
        check_is_fitted(self, "fit_report_")
        report = self.fit_report_
        return {"estimator": self.kind, "modality": self.modality_, "n_train": report.n_train,
                "n_val": report.n_val, "extracted": report.extracted, "cached": report.cached,
                "precision": report.precision, "engine": report.engine, "head_choice": report.head_choice,
                **report.notes}

    # -- persistence --------------------------------------------------------------------------------
    def prepare_output(self, path: str | Path, *, overwrite: bool = False) -> None:
        """Refuse, before any work, a `path` that `save` would not be allowed to write."""
        from transferkit.bundle import check_writable

        check_writable(path, overwrite=overwrite)

    def save(self, path: str | Path, *, metrics: JSONObject | None = None, overwrite: bool = False,
             extra: JSONObject | None = None) -> Path:
        """Write the bundle (safetensors + transferkit.json + model card) atomically."""
        from transferkit.bundle import model_card

        check_is_fitted(self, "head_")
        manifest: JSONObject = {
            "estimator": self.kind,
            "task": "classification",
            "modality": self.modality_,
            "labels": [str(c) for c in self.classes_],
            **self._manifest(),
            "metrics": metrics or {},
            **(extra or {}),
        }
        title, facts, unit, usage = self._card_facts(manifest)
        card = model_card(manifest, title=title, facts=facts, unit=unit, usage=usage)
        return self._write_bundle(Path(path), manifest, self._tensors(), card, overwrite=overwrite)

    def _write_bundle(self, path: Path, manifest: JSONObject, tensors: dict[str, torch.Tensor], card: str,
                      *, overwrite: bool) -> Path:
        from transferkit.bundle import save_bundle

        return save_bundle(path, manifest, tensors, card, overwrite=overwrite)

    @abstractmethod
    def _manifest(self) -> JSONObject:
        """This class's part of the manifest (backbone reference, head, training record…)."""

    def _tensors(self) -> dict[str, torch.Tensor]:
        """What `model.safetensors` holds: the head's tensors (fine-tuning stores more)."""
        return {f"head.{k}": v for k, v in self.head_.state_dict().items()}

    @abstractmethod
    def _card_facts(self, manifest: JSONObject) -> tuple[str, list[str], str, str]:
        """(title, facts, unit, usage) for the bundle's model card."""

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> Self:
        """Rebuild a saved model. `overrides` may set how it runs (`cache_dir`, `progress`, `device`, …)."""
        from transferkit.bundle import load_bundle

        unknown = sorted(set(overrides) - cls._runtime_params)
        if unknown:
            raise ConfigError(f"{cls.__name__}.load: {', '.join(unknown)} cannot be changed on a saved model; "
                              f"it may set {', '.join(sorted(cls._runtime_params))}")
        manifest, tensors = load_bundle(path)
        kind = estimator_kind(manifest)
        if kind != cls.kind:
            raise BundleError(f"'{path}' holds a {kind} model, not a {cls.kind} one; load it with "
                              "transferkit.load(path)")
        try:
            estimator = cls._restore(manifest, tensors, Path(path), overrides)
        except TransferkitError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # a manifest that does not fit its tensors
            classes = _head_classes(tensors)
            labels = manifest.get("labels") or []
            if classes is not None and classes != len(labels):
                raise BundleError(f"'{path}': its {MANIFEST_NAME} lists {len(labels)} labels but its weights hold a "
                                  f"head for {classes} classes; the bundle was edited or damaged: fit it "
                                  "again") from exc
            raise BundleError(f"'{path}' is damaged or from an incompatible transferkit: {exc!r}") from exc
        estimator.manifest_ = manifest
        return estimator

    @classmethod
    @abstractmethod
    def _restore(cls, manifest: JSONObject, tensors: dict[str, torch.Tensor], path: Path,
                 overrides: Params) -> Self:
        """Rebuild the fitted estimator from its manifest and tensors (weights checked by sha256)."""
