"""`TabularTransferClassifier`: feature transfer on tables that mix images, text, audio, numbers and categories.

    clf = TabularTransferClassifier(image_columns=["image_path"], text_columns=["title"],
                                    numeric_columns=["price", "weight"]).fit(frame, frame["category"])

One encoder per column kind, each turning one column into a block of features:

- image / text / audio column → the frozen backbone's embedding (one backbone per kind, shared by
  all columns of that kind; features cached on disk like `TransferClassifier`'s);
- numeric column → the value standardised with the training mean and std;
- categorical column → one-hot over the training vocabulary (a category unseen in training → all
  zeros).

Every block ends with one missing-mask feature: 1 when the cell is missing (NaN, empty, a path to
a file that does not exist, a clip or image that cannot be decoded, text that is blank, a number
that does not parse), in which case the rest of the block is zeros. So a bad cell never crashes
the run and never drops the row; it is counted per column in `fit_report_.columns` (and in the
bundle) so the user sees it. Images that do not exist are therefore zero-embedded + masked
rather than skipped: the row's other columns still carry signal.

Fusion: `fusion="concat"` (default) trains the head (`head=`, as for `TransferClassifier`) on the
concatenated blocks — late fusion. `fusion="gated"` trains a `GatedFusionHead` (see
`transferkit.heads.fusion`) that learns per-column gates on the same cached features; the encoders
stay frozen in both cases.

Domain adaptation (`fit(..., X_target=rows)`, `fit --adapt-to TARGET`): TARGET's rows are unlabelled
rows with the same input columns, from where the model will be used. Each image, text and audio
column's features of TARGET are aligned to the training rows' features of that column on their own
(`adapt.fit_alignment`, `adapt_method`: `auto` — the shift test, then James–Stein-shrunk
standardisation where it finds a shift, per column —, `standardize`, `coral` or `none`), since each
column is its own domain with its own shift; numbers and categories are left as they are. The head
trains on the training rows alone; the per-column maps are part of the model (`columns.<i>.align.*`
in the bundle) and `predict`, `evaluate` and `serve` apply them to every row's cells; each column's
shift diagnostic (before and after its map) is in the record, the summary and the report. The probe's
head-aware refinements (latent domains, class weighting, `mcc`, `self-training`) are not done for
tables.

The bundle stores each encoder's reference (name, weights sha256, preprocessing), the numeric
means/stds, the categorical vocabularies and the column layout, so `predict` takes rows shaped
like the training table.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, TypeAlias, TypedDict

import numpy as np
import torch

from transferkit.adapt.align import aligned_with
from transferkit.backbones.contract import Backbone, same_weights
from transferkit.backbones.registry import PRETRAINED_BACKBONES
from transferkit.cache import FeatureCache, resolve_cache
from transferkit.data.dataset import LabelledData
from transferkit.errors import BundleError, ConfigError, DataError, check_is_fitted
from transferkit.estimators.transfer_estimator import FitReport, Labels, Params, TransferEstimator
from transferkit.features import ExtractOptions, Features, extract_features, release_engines
from transferkit.heads import HeadChoice, build_head, class_weights, parse_head, train_probe
from transferkit.jsontypes import JSONObject
from transferkit.params import (
    ADAPT_METHOD,
    BATCH_SIZE,
    CACHE_DIR,
    CLASS_WEIGHT,
    DEVICE,
    ENGINE,
    FUSION,
    HEAD,
    LONG_TEXT,
    NAME,
    PRECISION,
    PROGRESS,
    SEED,
    VAL_FRACTION,
    Param,
    Satisfies,
    param,
)

#: column kinds, in the order their blocks are laid out
KINDS = ("image", "text", "audio", "numeric", "categorical")
#: kinds whose cells are encoded by a pretrained backbone
EMBEDDED = ("image", "text", "audio")
#: kinds whose cells are file paths
PATH_KINDS = ("image", "audio")
#: the `adapt_method`s a table model applies: alignments of each column's features, fitted without the head
TABLE_ADAPT_METHODS = ("auto", "standardize", "coral", "none")


class ColumnCounts(TypedDict, total=False):
    """A column's report as fit reports, bundles and `evaluate` write it: only the counts that are not 0
    (and the examples, if any), in `ColumnReport`'s field order."""

    missing: int
    unreadable: int
    truncated: int
    unseen: int
    examples: list[str]


@dataclass
class ColumnReport:
    """What one column's encoder met: missing cells, unreadable files, a few examples."""

    missing: int = 0
    unreadable: int = 0
    truncated: int = 0
    unseen: int = 0
    examples: list[str] = field(default_factory=list)

    def as_dict(self) -> ColumnCounts:
        out: ColumnCounts = {}
        if self.missing:
            out["missing"] = self.missing
        if self.unreadable:
            out["unreadable"] = self.unreadable
        if self.truncated:
            out["truncated"] = self.truncated
        if self.unseen:
            out["unseen"] = self.unseen
        if self.examples:
            out["examples"] = self.examples
        return out


#: a table's row: column → cell value, as read (each column's encoder checks its cells)
Row: TypeAlias = dict[str, object]
#: what the table model takes: a pandas DataFrame, row dicts (or one), or `LabelledData` of rows; `_as_rows`
#: checks which at run time
TableData: TypeAlias = object


@dataclass
class TabularFitReport(FitReport):
    """The probe's report plus what each column met (missing cells, unreadable files, unseen categories)."""

    columns: dict[str, ColumnCounts] = field(default_factory=dict)


def _missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _number(value: object) -> float | None:
    if _missing(value):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _column_names(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str) and all(
        isinstance(c, str) and c.strip() for c in value)


def _columns(kind: str) -> Param[tuple[str, ...]]:
    return param((), f"The table's {kind} columns.", rules=Satisfies(_column_names, "a list of column names"))


def _encoder(kind: str) -> Param[str]:
    return param(PRETRAINED_BACKBONES[kind], f"The backbone that encodes the {kind} columns.", rules=NAME)


#: the parameters that are this estimator's own
_COLUMNS = {f"{kind}_columns": _columns(kind) for kind in KINDS}
_ENCODERS = {f"{kind}_backbone": _encoder(kind) for kind in EMBEDDED}
_OWN: dict[str, Param[object]] = {**_COLUMNS, **_ENCODERS}


@dataclass(frozen=True)
class ColumnBlocks:
    """One column of two tables, encoded as a table model encodes it (`column_blocks`): rows × its block — an
    embedded column's features, a number standardised by DATA's mean and spread, or a category one-hot over
    DATA's vocabulary (a category DATA never had: all zeros) — whose last unit marks an absent cell."""

    kind: str  # image, text, audio, numeric or categorical
    column: str
    source: np.ndarray
    target: np.ndarray
    labels: list[str]  # the source rows' labels
    categories: list[str] | None = None  # a categorical column's vocabulary (DATA's), in its block's order
    encoder: str | None = None  # an image, text or audio column's backbone


class TabularTransferClassifier(TransferEstimator):
    """One frozen encoder per column kind, blocks concatenated (or gated), a head on top.

    Column lists name the table's columns of each kind; at least one column is needed.
    """

    kind: ClassVar[str] = "tabular"
    _param_overrides: ClassVar[dict[str, Param[object]]] = _OWN
    _runtime_params: ClassVar[frozenset[str]] = frozenset(
        {"cache_dir", "progress", "device", "batch_size", "precision", "engine"})

    adapts_to_target: ClassVar[bool] = True

    fit_report_: TabularFitReport
    backbones_: dict[str, Backbone]
    #: column → the alignment of its features to the training rows' (`fit(X_target=…)`; empty without)
    aligns_: dict[str, torch.nn.Module]
    #: what `fit(X_target=…)` did, per column (None without a target)
    adaptation_: JSONObject | None
    numeric_stats_: dict[str, tuple[float, float]]
    vocabularies_: dict[str, list[str]]
    #: what each column met in the last `features` call
    last_columns_: dict[str, ColumnCounts]

    def __init__(
        self,
        *,
        image_columns: Sequence[str] = _COLUMNS["image_columns"].default,
        text_columns: Sequence[str] = _COLUMNS["text_columns"].default,
        audio_columns: Sequence[str] = _COLUMNS["audio_columns"].default,
        numeric_columns: Sequence[str] = _COLUMNS["numeric_columns"].default,
        categorical_columns: Sequence[str] = _COLUMNS["categorical_columns"].default,
        image_backbone: str = _ENCODERS["image_backbone"].default,
        text_backbone: str = _ENCODERS["text_backbone"].default,
        audio_backbone: str = _ENCODERS["audio_backbone"].default,
        head: str = HEAD.default,
        fusion: str = FUSION.default,
        class_weight: str = CLASS_WEIGHT.default,
        val_fraction: float = VAL_FRACTION.default,
        seed: int = SEED.default,
        batch_size: int = BATCH_SIZE.default,
        precision: str = PRECISION.default,
        engine: str = ENGINE.default,
        long_text: str = LONG_TEXT.default,
        adapt_method: str = ADAPT_METHOD.default,
        cache_dir: str | Path | bool | None = CACHE_DIR.default,
        progress: bool = PROGRESS.default,
        device: str | None = DEVICE.default,
    ) -> None:
        self.image_columns = image_columns
        self.text_columns = text_columns
        self.audio_columns = audio_columns
        self.numeric_columns = numeric_columns
        self.categorical_columns = categorical_columns
        self.image_backbone = image_backbone
        self.text_backbone = text_backbone
        self.audio_backbone = audio_backbone
        self.head = head
        self.fusion = fusion
        self.class_weight = class_weight
        self.val_fraction = val_fraction
        self.seed = seed
        self.batch_size = batch_size
        self.precision = precision
        self.engine = engine
        self.long_text = long_text
        self.adapt_method = adapt_method
        self.cache_dir = cache_dir
        self.progress = progress
        self.device = device

    # -- parameters -----------------------------------------------------------------------------
    def columns(self) -> list[tuple[str, str]]:
        """(kind, column) for every column used, in block order."""
        lists = {"image": self.image_columns, "text": self.text_columns, "audio": self.audio_columns,
                 "numeric": self.numeric_columns, "categorical": self.categorical_columns}
        return [(kind, str(col)) for kind in KINDS for col in (lists[kind] or ())]

    def path_columns(self) -> list[str]:
        return [col for kind, col in self.columns() if kind in PATH_KINDS]

    def _validate_combination(self) -> None:
        cols = self.columns()
        if not cols:
            raise ConfigError("a table model needs at least one column: pass image_columns, text_columns, "
                              "audio_columns, numeric_columns or categorical_columns (CLI: --image-column …)")
        names = [c for _, c in cols]
        repeated = sorted({c for c in names if names.count(c) > 1})
        if repeated:
            raise ConfigError(f"column(s) {', '.join(repeated)} given for more than one kind; give each column once")
        if parse_head(self.head).uses_feature_map:
            raise ConfigError(f"head '{self.head}' starts with flatten, which needs an image feature map; "
                              "a table model trains on pooled column embeddings")
        if self.adapt_method not in TABLE_ADAPT_METHODS:
            raise ConfigError(f"adapt_method '{self.adapt_method}' trains the head on the target, which a table "
                              f"model does not do; it aligns each column's features: "
                              f"{', '.join(TABLE_ADAPT_METHODS)}")

    def _cache(self) -> FeatureCache | None:
        return resolve_cache(self.cache_dir)

    def _options(self) -> ExtractOptions:
        return ExtractOptions(batch_size=self.batch_size, precision=self.precision, engine=self.engine,
                              progress=self.progress,
                              device=self.device)

    def _backbone_name(self, kind: str) -> str:
        return {"image": self.image_backbone, "text": self.text_backbone, "audio": self.audio_backbone}[kind]

    def _create_backbones(self) -> dict[str, Backbone]:
        from transferkit.backbones import build_backbone

        out: dict[str, Backbone] = {}
        for kind in EMBEDDED:
            if any(k == kind for k, _ in self.columns()):
                kwargs = {"long_text": self.long_text} if kind == "text" and self.long_text != "truncate" else {}
                out[kind] = build_backbone(self._backbone_spec(self._backbone_name(kind)), **kwargs)
                if out[kind].modality != kind:
                    raise ConfigError(f"{kind}_backbone '{self._backbone_name(kind)}' is a "
                                      f"{out[kind].modality} backbone; choose a {kind} one (transferkit models)")
        return out

    # -- encoding -------------------------------------------------------------------------------
    def _learn_encoders(self, rows: Sequence[Row]) -> None:
        """Numeric means/stds and categorical vocabularies from the training rows."""
        self.numeric_stats_ = {}
        self.vocabularies_ = {}
        for kind, col in self.columns():
            if kind == "numeric":
                values = np.array([v for v in (_number(r.get(col)) for r in rows) if v is not None], np.float64)
                mean = float(values.mean()) if len(values) else 0.0
                std = float(values.std()) if len(values) > 1 else 1.0
                self.numeric_stats_[col] = (mean, std if std > 1e-12 else 1.0)
            elif kind == "categorical":
                seen = {str(r.get(col)).strip() for r in rows if not _missing(r.get(col))}
                self.vocabularies_[col] = sorted(seen)

    def block_dims(self) -> list[int]:
        """Width of each column's block (its features plus the missing mask), in `columns()` order."""
        check_is_fitted(self, "vocabularies_")
        dims = []
        for kind, col in self.columns():
            if kind in EMBEDDED:
                dims.append(self.backbones_[kind].num_features + 1)
            elif kind == "numeric":
                dims.append(2)
            else:
                dims.append(len(self.vocabularies_[col]) + 1)
        return dims

    def encode(self, rows: Sequence[Row]) -> tuple[np.ndarray, dict[str, ColumnReport], Features]:
        """The fused feature matrix [n, sum(block_dims)] of `rows`, what each column met, extraction stats."""
        check_is_fitted(self, "vocabularies_")
        n = len(rows)
        blocks: list[np.ndarray] = []
        reports: dict[str, ColumnReport] = {}
        extracted = cached = 0
        seconds = 0.0
        precision = "fp32"
        for kind, col in self.columns():
            rep = reports.setdefault(col, ColumnReport())
            values = [r.get(col) for r in rows]
            if kind in EMBEDDED:
                block, feats = self._embedded_block(kind, col, values, rep)
                if feats is not None:
                    extracted, cached = extracted + feats.extracted, cached + feats.cached
                    seconds, precision = seconds + feats.seconds, feats.precision
            elif kind == "numeric":
                block = self._numeric_block(col, values, rep)
            else:
                block = self._categorical_block(col, values, rep)
            blocks.append(block)
        matrix = np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0), np.float32)
        stats = Features(values=matrix, ok=np.ones(n, bool), extracted=extracted, cached=cached,
                         precision=precision, seconds=seconds)
        return matrix, reports, stats

    def _embedded_block(self, kind: str, col: str, values: list[object], rep: ColumnReport
                        ) -> tuple[np.ndarray, Features | None]:
        """An image/text/audio column's block: its encoder's features and a last "absent" unit (a missing,
        unfound or unreadable cell), and the extraction's stats (None when no cell was there to read)."""
        n = len(values)
        backbone = self.backbones_[kind]
        block = np.zeros((n, backbone.num_features + 1), np.float32)
        present = []
        for i, v in enumerate(values):
            if _missing(v):
                rep.missing += 1
            elif kind in PATH_KINDS and not os.path.isfile(str(v)):
                rep.missing += 1
                if len(rep.examples) < 5:
                    rep.examples.append(f"file not found: {v}")
            else:
                present.append(i)
        items = [str(values[i]) for i in present]
        absent = np.ones(n, bool)
        feats = None
        if items:
            feats = extract_features(backbone, items, options=self._options(), cache=self._cache(),
                                     description=f"{col} ({backbone.name})")
            ok_rows = [present[j] for j in np.flatnonzero(feats.ok)]
            align = getattr(self, "aligns_", {}).get(col)
            block[ok_rows, :-1] = feats.values if align is None else aligned_with(align, feats.values)
            for reason in feats.failed.values():
                rep.unreadable += 1
                if len(rep.examples) < 5:
                    rep.examples.append(reason)
            rep.truncated += int(backbone.input_notes(items).get("truncated_texts", 0))
            absent[ok_rows] = False
        block[absent, -1] = 1.0
        return block, feats

    def _numeric_block(self, col: str, values: list[object], rep: ColumnReport) -> np.ndarray:
        """A numeric column's block: the value standardised by the training mean/std, and a "missing" unit."""
        mean, std = self.numeric_stats_[col]
        block = np.zeros((len(values), 2), np.float32)
        for i, v in enumerate(values):
            number = _number(v)
            if number is None:
                block[i, 1] = 1.0
                rep.missing += 1
                if not _missing(v) and len(rep.examples) < 5:
                    rep.examples.append(f"not a number: {v!r}")
            else:
                block[i, 0] = (number - mean) / std
        return block

    def _categorical_block(self, col: str, values: list[object], rep: ColumnReport) -> np.ndarray:
        """A categorical column's block: one-hot over the training vocabulary, and a "missing" unit (a category
        not seen in training is all zeros)."""
        vocab = self.vocabularies_[col]
        index = {c: j for j, c in enumerate(vocab)}
        block = np.zeros((len(values), len(vocab) + 1), np.float32)
        for i, v in enumerate(values):
            if _missing(v):
                block[i, -1] = 1.0
                rep.missing += 1
            elif str(v).strip() in index:
                block[i, index[str(v).strip()]] = 1.0
            else:
                rep.unseen += 1
        return block

    def column_blocks(self, X: TableData, y: Labels | None, X_target: TableData) -> list[ColumnBlocks]:
        """Each column of `X`'s rows and of `X_target`'s, encoded as this model encodes them — its encoders (the
        backbones, the numeric columns' statistics, the categories' vocabularies) set up from `X`, no head
        trained: what `transferkit shift` compares, column by column. `X_target`'s labels, if any, are not read.
        The encoders are set up on an unfitted copy with the same parameters: this model, fitted or not, is
        left as it was."""
        self.validate()
        rows, labels = _as_rows(X, y, "DATA")
        _check_columns(rows, [c for _, c in self.columns()], "DATA", X)
        target_rows, _ = _as_rows(X_target, None, "TARGET", need_labels=False)
        _check_columns(target_rows, [c for _, c in self.columns()], "TARGET", X_target)
        torch.manual_seed(self.seed)
        encoder = type(self)(**self.get_params())
        encoder.aligns_ = {}
        encoder.backbones_ = encoder._create_backbones()
        encoder._learn_encoders(rows)
        source, _, _ = encoder.encode(rows)
        target, _, _ = encoder.encode(target_rows)
        out, start = [], 0
        for (kind, col), width in zip(self.columns(), encoder.block_dims(), strict=True):
            out.append(ColumnBlocks(kind, col, source[:, start:start + width], target[:, start:start + width], labels,
                                    encoder.vocabularies_.get(col),
                                    encoder.backbones_[kind].name if kind in EMBEDDED else None))
            start += width
        return out

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, X: TableData, y: Labels | None = None, *, X_val: TableData | None = None,
            y_val: Labels | None = None, X_target: TableData | None = None) -> TabularTransferClassifier:
        """Encode every column of `X` (a DataFrame, a list of row dicts, or `LabelledData` of rows), train the head.
        `X_target`: unlabelled rows from where the model will be used; each embedded column's features are
        aligned to the training rows' (module docstring)."""
        self.validate()
        self.aligns_, self.adaptation_ = {}, None
        rows, labels = _as_rows(X, y, "training data")
        _check_columns(rows, [c for _, c in self.columns()], "training data", X)
        data = LabelledData(items=rows, labels=labels, source="training data", modality="table")
        data.validate_for_training()
        val_rows: list[Row] = []
        val_labels: list[str] = []
        if X_val is not None:
            val_rows, val_labels = _as_rows(X_val, y_val, "validation data")
        torch.manual_seed(self.seed)
        self.backbones_ = self._create_backbones()
        self._learn_encoders(rows)
        matrix, reports, stats = self.encode(rows + val_rows)
        self.classes_ = np.array(data.classes)
        index = {c: i for i, c in enumerate(self.classes_)}
        y_all = np.array([index.get(label, -1) for label in labels + val_labels])
        tr_idx, va_idx = self._head_rows(labels, val_labels, index)
        weights = class_weights(y_all[tr_idx], len(self.classes_), self.class_weight)
        head, choice = self._train_head(matrix, y_all, tr_idx, va_idx, weights)
        self.head_ = head.eval()
        self.fit_report_ = TabularFitReport(
            n_train=len(tr_idx), n_val=len(va_idx), extracted=stats.extracted, cached=stats.cached,
            columns={c: r.as_dict() for c, r in reports.items()}, head_choice=choice,
            class_weighted=weights is not None, precision=stats.precision, extract_seconds=stats.seconds,
        )
        self.train_class_counts_ = data.class_counts()
        if X_target is not None:
            self._adapt(matrix, self.classes_[np.maximum(y_all, 0)], X_target)
        self.last_columns_ = self.fit_report_.columns
        return self

    def _adapt(self, matrix: np.ndarray, labels: np.ndarray, X_target: TableData) -> None:
        """Align each embedded column of the target rows to the same column of `matrix` (the training and
        validation rows' features, as the head saw them; `labels` theirs), where both hold enough readable
        cells; and say how far each column's target is, before and after (`adapt.shift_diagnostic`)."""
        import time

        from transferkit.adapt import MIN_TARGET_INPUTS, auto_outcome, fit_alignment
        from transferkit.adapt.shift_diagnostic import shift_record

        started = time.perf_counter()
        rows, _ = _as_rows(X_target, None, "--adapt-to's rows", need_labels=False)
        _check_columns(rows, [c for _, c in self.columns()], "--adapt-to's rows", X_target)
        target, _, _ = self.encode(rows)  # before any alignment exists: the target's own features
        columns: JSONObject = {}
        start = 0
        for (kind, col), width in zip(self.columns(), self.block_dims(), strict=True):
            block = slice(start, start + width)
            start += width
            if kind not in EMBEDDED:
                continue
            present = matrix[:, block][:, -1] == 0
            source_cells = matrix[present, block][:, :-1]
            target_cells = target[target[:, block][:, -1] == 0, block][:, :-1]
            entry: JSONObject = {"target_cells": len(target_cells)}
            alignment = None
            if len(target_cells) < MIN_TARGET_INPUTS:
                entry["why"] = f"{len(target_cells)} readable target cells, fewer than {MIN_TARGET_INPUTS}: not aligned"
            else:
                alignment = fit_alignment(source_cells, target_cells, self.adapt_method, seed=self.seed,
                                          blocks=self.backbones_[kind].feature_blocks())
                entry["why"] = f"adapt_method {self.adapt_method}"
                if alignment is not None and self.adapt_method == "auto":
                    moved, entry["why"] = auto_outcome(alignment)
                    alignment = alignment if moved else None
            entry["applied"] = alignment.method if alignment is not None else "none"
            aligned = None
            if alignment is not None:
                self.aligns_[col] = alignment.module().eval()
                entry["statistics"] = {k: float(v) for k, v in (alignment.info or {}).items()}
                aligned = alignment.apply(target_cells)
            if len(target_cells) >= MIN_TARGET_INPUTS:
                entry["shift"] = shift_record(source_cells, target_cells, list(labels[present]), seed=self.seed,
                                              target_aligned=aligned,
                                              alignment=alignment.method if alignment is not None else None)
            columns[col] = entry
        applied = "; ".join(f"{col}: {e['applied']}" for col, e in columns.items()) or "none (no image, text or " \
                                                                                         "audio column)"
        self.adaptation_ = {"method": self.adapt_method, "target_inputs": len(rows), "target_skipped": 0,
                            "applied": f"per column — {applied}",
                            "why": " | ".join(f"{col}: {e['why']}" for col, e in columns.items()),
                            "columns": columns, "seconds": round(time.perf_counter() - started, 3)}
        self.target_skipped_: dict[str, str] = {}

    def _head_rows(self, labels: list[str], val_labels: list[str], index: dict[str, int]
                   ) -> tuple[np.ndarray, np.ndarray]:
        """The rows the head trains on and those that choose its settings: the training and validation
        rows, or without validation rows a stratified `val_fraction` of the training rows."""
        n_train = len(labels)
        if val_labels:
            unknown = sorted(set(val_labels) - set(index))
            if unknown:
                raise DataError(f"validation data has classes not in the training data: {unknown[:5]}")
            return np.arange(n_train), np.arange(n_train, n_train + len(val_labels))
        from transferkit.data.split import split_indices

        parts = split_indices(labels, val_fraction=self.val_fraction, test_fraction=0.0, seed=self.seed)
        return np.array(parts["train"], int), np.array(parts["val"], int)

    def _train_head(self, matrix: np.ndarray, y_all: np.ndarray, tr_idx: np.ndarray, va_idx: np.ndarray,
                    weights: np.ndarray | None) -> tuple[torch.nn.Module, HeadChoice]:
        """The fusion head (`fusion`: a probe on the blocks side by side, or learned per-column gates) and
        the settings validation chose for it."""
        release_engines()  # the engine kept for the next extraction call: not beside the head's fit
        if self.fusion == "gated":
            from transferkit.heads.fusion import fit_gated_fusion

            return fit_gated_fusion(matrix[tr_idx], y_all[tr_idx], matrix[va_idx], y_all[va_idx],
                                    self.block_dims(), len(self.classes_), weights=weights, seed=self.seed)
        probe = train_probe(parse_head(self.head), matrix[tr_idx], y_all[tr_idx], matrix[va_idx], y_all[va_idx],
                            len(self.classes_), class_weight=weights, seed=self.seed, blocks=self.head_blocks())
        return probe.head, probe.choice

    def head_blocks(self) -> list[int]:
        """The widths the probe weighs equally, in block order: each column, and each part of a concatenated
        encoder (`A+B`) on its own — the single-modality probe's rule (`Backbone.feature_blocks`), where an
        encoder's blocks are weighed equally. Without it a column's share of the head's standardised
        features was its width: a text column with hashed n-grams (16,769 features) beside numbers (2
        each) was nearly all of it, and the n-grams nearly all of the text. On debtext as a table
        (`benchmarks/table_shift.py`, half B): MiniLM 72.2% → 74.5%, MiniLM + n-grams 70.9% → 75.1% (the
        text probe alone on that column: 75.3%, which the table now gives with the text column alone)."""
        blocks: list[int] = []
        for (kind, _), width in zip(self.columns(), self.block_dims(), strict=True):
            parts = self.backbones_[kind].feature_blocks() if kind in EMBEDDED else [width - 1]
            blocks += [*parts[:-1], parts[-1] + 1]  # the column's absent/missing unit goes with its last part
        return blocks

    # -- predict ------------------------------------------------------------------------------------
    @property
    def modality_(self) -> str:
        return "table"

    def features(self, X: TableData, *, cache: bool = True) -> Features:
        """The fused features of rows (every row gets features; bad cells are masked and counted
        in `last_columns_`)."""
        check_is_fitted(self, "head_")
        rows, _ = _as_rows(X, None, "rows", need_labels=False)
        _, reports, stats = self.encode(rows)
        self.last_columns_ = {c: r.as_dict() for c, r in reports.items()}
        return stats

    def _as_data(self, X: TableData, y: Labels | None, what: str) -> LabelledData:
        rows, labels = _as_rows(X, y, what)
        return LabelledData(items=rows, labels=labels, source=what, modality="table")

    def _evaluation_columns(self) -> dict[str, ColumnCounts] | None:
        return self.last_columns_

    def summary(self) -> JSONObject:
        adaptation = getattr(self, "adaptation_", None)
        return {**super().summary(), "fusion": self.fusion, "head": self.head,
                "encoders": {k: b.name for k, b in self.backbones_.items()}, "columns": self.fit_report_.columns,
                **({"adaptation": adaptation} if adaptation else {})}

    # -- persistence --------------------------------------------------------------------------------
    def _manifest(self) -> JSONObject:
        columns = []
        for (kind, col), dim in zip(self.columns(), self.block_dims(), strict=True):
            entry: JSONObject = {"name": col, "kind": kind, "dim": dim}
            if kind == "numeric":
                entry["mean"], entry["std"] = self.numeric_stats_[col]
            elif kind == "categorical":
                entry["vocabulary"] = self.vocabularies_[col]
            columns.append(entry)
        params = {k: v for k, v in self.get_params().items() if k not in ("cache_dir", "progress", "device")}
        report = self.fit_report_
        return {
            "strategy": "probe",
            "kind": "tabular",
            "columns": columns,
            "encoders": {kind: {**b.describe(), "weights_source": None} for kind, b in self.backbones_.items()},
            "head": {"spec": self.head, "fusion": self.fusion, "in_features": int(sum(self.block_dims())),
                     "block_dims": self.block_dims(), "choice": report.head_choice},
            "training": {**{k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
                         "n_train": report.n_train, "n_val": report.n_val, "class_counts": self.train_class_counts_,
                         "columns": report.columns, "class_weighted": report.class_weighted},
            **({"adaptation": self.adaptation_} if getattr(self, "adaptation_", None) else {}),
        }

    def _tensors(self) -> dict[str, torch.Tensor]:
        """The head's tensors and each aligned column's alignment (`columns.<i>.align.*`, i its block)."""
        tensors = super()._tensors()
        aligns = getattr(self, "aligns_", {})
        for i, (_, col) in enumerate(self.columns()):
            if col in aligns:
                tensors.update({f"columns.{i}.align.{k}": v.contiguous() for k, v in aligns[col].state_dict().items()})
        return tensors

    def _card_facts(self, manifest: JSONObject) -> tuple[str, list[str], str, str]:
        from transferkit.bundle import markdown_text

        cols = ", ".join(f"{markdown_text(c['name'])} ({c['kind']})" for c in manifest["columns"])
        encoders = ", ".join(f"{k}: {v['name']}" for k, v in manifest["encoders"].items()) or "none"
        return (f"transferkit table model: {manifest['head']['fusion']} fusion + {manifest['head']['spec']} head",
                [f"- columns: {cols}", f"- encoders (frozen): {encoders}"],
                "rows",
                "Predict with `transferkit predict <this folder> rows.csv` or `--row '{\"column\": value, …}'`.")

    @classmethod
    def _restore(cls, manifest: JSONObject, tensors: dict[str, torch.Tensor], path: Path,
                 overrides: Params) -> TabularTransferClassifier:
        from transferkit.backbones import create_backbone

        training = manifest.get("training", {})
        params = {k: training[k] for k in ("image_backbone", "text_backbone", "audio_backbone", "head", "fusion",
                                            "class_weight", "val_fraction", "seed", "batch_size", "precision",
                                            "long_text", "adapt_method") if k in training}
        lists: dict[str, list[str]] = {f"{kind}_columns": [] for kind in KINDS}
        for entry in manifest["columns"]:
            lists[f"{entry['kind']}_columns"].append(entry["name"])
        clf = cls(**{**lists, **params, **overrides})
        clf.backbones_ = {}
        for kind, info in manifest.get("encoders", {}).items():
            backbone = create_backbone(info["name"])
            if not same_weights(info["weights_id"], backbone):
                raise BundleError(f"'{path}': the {kind} encoder '{info['name']}' was trained with weights sha256 "
                                  f"{info['weights_id'][:12]}…, but this machine has {backbone.weights_id[:12]}…; "
                                  "install the same weights")
            backbone.apply_preprocess_config(info["preprocess"])
            clf.backbones_[kind] = backbone
        clf.numeric_stats_ = {e["name"]: (float(e["mean"]), float(e["std"]))
                              for e in manifest["columns"] if e["kind"] == "numeric"}
        clf.vocabularies_ = {e["name"]: list(e["vocabulary"])
                             for e in manifest["columns"] if e["kind"] == "categorical"}
        labels = manifest["labels"]
        head_info = manifest["head"]
        model: torch.nn.Module
        if head_info.get("fusion") == "gated":
            from transferkit.heads.fusion import GatedFusionHead

            model = GatedFusionHead(head_info["block_dims"], len(labels),
                                    hidden=int(head_info.get("choice", {}).get("hidden", 64)))
        else:
            model = build_head(parse_head(head_info["spec"]), int(head_info["in_features"]), len(labels))
        model.load_state_dict({k.removeprefix("head."): v for k, v in tensors.items() if k.startswith("head.")})
        clf.head_ = model.eval()
        clf.aligns_ = _stored_alignments(manifest, tensors, clf.backbones_, path)
        clf.adaptation_ = manifest.get("adaptation")
        clf.classes_ = np.array(labels)
        clf.fit_report_ = TabularFitReport(n_train=training.get("n_train", 0), n_val=training.get("n_val", 0),
                                           columns=training.get("columns", {}), head_choice=head_info.get("choice", {}))
        clf.train_class_counts_ = training.get("class_counts", {})
        return clf


def _stored_alignments(manifest: JSONObject, tensors: dict[str, torch.Tensor], backbones: dict[str, Backbone],
                       path: Path) -> dict[str, torch.nn.Module]:
    """Each aligned column's alignment, read back from the bundle's `columns.<i>.align.*` tensors."""
    from transferkit.adapt.stored import alignment_from_tensors

    aligns: dict[str, torch.nn.Module] = {}
    for i, entry in enumerate(manifest["columns"]):
        prefix = f"columns.{i}."
        align = alignment_from_tensors({k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)})
        if align is None:
            continue
        backbone = backbones.get(entry["kind"])
        if backbone is None or align.dim != backbone.num_features:
            raise BundleError(f"'{path}': column '{entry['name']}' has an alignment of {align.dim} features, "
                              "its encoder does not give that many; the bundle was edited or damaged")
        aligns[str(entry["name"])] = align.eval()
    return aligns


def _as_rows(X: TableData, y: Labels | None, what: str, *, need_labels: bool = True
             ) -> tuple[list[Row], list[str]]:
    """Rows as dicts (from a DataFrame, a list of dicts, or `LabelledData`) and their labels."""
    if isinstance(X, LabelledData):
        rows, labels = list(X.items), list(X.labels)
    else:
        if hasattr(X, "to_dict") and hasattr(X, "columns"):
            from transferkit.data.rows import _cell

            rows = [{str(k): _cell(v) for k, v in r.items()} for r in X.to_dict(orient="records")]
        elif isinstance(X, dict):
            rows = [X]
        else:
            items = list(X) if isinstance(X, Iterable) else []
            rows = [r for r in items if isinstance(r, dict)]
            if not isinstance(X, Iterable) or len(rows) != len(items):
                raise DataError(f"{what}: a table model takes rows as dicts of column → value, or a pandas DataFrame")
        if y is None:
            if need_labels:
                raise DataError(f"{what}: labels are missing; pass fit(rows, labels)")
            labels = []
        else:
            labels = [str(v).strip() for v in y]
            if len(labels) != len(rows):
                raise DataError(f"{what}: {len(rows)} rows but {len(labels)} labels")
    return rows, labels


def _check_columns(rows: list[Row], columns: list[str], what: str, X: TableData) -> None:
    """A `DataError` listing the columns the data has when one asked for is in no row."""
    present: list[str] = list(map(str, X.columns)) if hasattr(X, "columns") else sorted({k for r in rows for k in r})
    missing = [c for c in columns if c not in present]
    if missing:
        raise DataError(f"{what}: missing column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(map(repr, missing))}; the data has columns: {', '.join(map(repr, present))}")
