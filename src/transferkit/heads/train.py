"""Training a head on cached features: the linear probe (scikit-learn L-BFGS, C chosen on
validation) and one minibatch loop for every torch head (MLP, layer specs, gated fusion).

`train_probe` is the one probe trainer: the rows to fit and the rows that choose C (or stop the
MLP), class weights, the head, and its probabilities. Fit, the curve, LP-FT's first step and
`--backbone auto` all train their probes through it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict, TypeVar

import numpy as np
import torch
from torch import nn

from transferkit.errors import ConfigError
from transferkit.heads.head_spec import HeadSpec, Standardize, build_head
from transferkit.runtime import trim_heap

if TYPE_CHECKING:
    from scipy.sparse import csr_array

HeadT = TypeVar("HeadT", bound=nn.Module)


class HeadChoice(TypedDict, total=False):
    """What validation chose for a head, kept in the fit report and the bundle: a linear head's C and
    its validation accuracy at each C tried; a torch head's epoch of lowest validation loss and that
    loss (None without validation rows). Heads built on top of these add their own keys
    (`heads.fusion.FusionChoice`, the probe estimator's views, LP-FT's start)."""

    C: float
    val_accuracy_by_C: dict[str, float]
    epochs: int
    val_loss: float | None


@dataclass(frozen=True)
class HeadTraining:
    """Settings for training a head on cached features."""

    c_grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    max_iter: int = 1000
    epochs: int = 200
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    patience: int = 20


@dataclass(frozen=True)
class Rows:
    """Rows `index` of a feature matrix, read a block at a time by the linear probe (no copy of them
    all: `values[index]` of 3,000 texts' MiniLM + n-gram features is 160 MB beside the matrix).
    Anything that needs them as one array (a torch head) gets one through `np.asarray`.

    `disposable`: the matrix may be overwritten (the training rows and the validation rows must then be
    rows of the same matrix)."""

    values: np.ndarray
    index: np.ndarray
    #: the caller gives `values` up (it reads it no more after training): the linear probe may write its
    #: standardised rows over it instead of into a copy beside it (`_fit_linear`)
    disposable: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.index), int(self.values.shape[1])

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self.values[self.index[rows]]

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        return np.asarray(self.values[self.index], dtype=dtype)


#: feature rows a head trains on: an array, or rows of one (`Rows`)
FeatureRows = np.ndarray | Rows


@dataclass(frozen=True)
class FittedProbe:
    """A head trained on features, what was chosen for it (C, epochs…), whether classes were weighted,
    and a linear head's held-out validation probabilities (`val_proba`)."""

    head: nn.Sequential
    choice: HeadChoice
    class_weighted: bool
    #: a linear head's validation probabilities [n_val, num_classes] from its C grid: the model at the C
    #: chosen, fitted on the training rows only, before the head was refitted on train + validation (the
    #: head itself has seen validation). What DEV scores (`adapt.dev`), kept in memory only (not in
    #: `choice`, which the bundle saves). None for a torch head and without validation rows.
    val_proba: np.ndarray | None = None

    def proba(self, values: np.ndarray) -> np.ndarray:
        """Class probabilities of feature rows (float32, one row each)."""
        return torch.softmax(self._logits(values).float(), dim=1).numpy()

    def predict(self, values: np.ndarray) -> np.ndarray:
        """Predicted class indices of feature rows."""
        return self._logits(values).argmax(dim=1).numpy()

    def _logits(self, values: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return self.head(torch.from_numpy(np.asarray(values, np.float32)))


def train_probe(
    spec: HeadSpec,
    X: FeatureRows,
    y: np.ndarray,
    X_val: FeatureRows,
    y_val: np.ndarray,
    num_classes: int,
    *,
    class_weight: str | np.ndarray | None = "none",
    seed: int,
    training: HeadTraining | None = None,
    blocks: Sequence[int] | None = None,
) -> FittedProbe:
    """Train `spec` on (X, y), its C (linear) or its epochs (torch heads) chosen on (X_val, y_val).

    `class_weight`: 'auto', 'balanced' or 'none' (the weights computed from `y`, see `class_weights`),
    or the weights themselves (None: unweighted). `blocks`: widths of feature blocks to weigh equally (a
    concatenation of backbones): after standardisation each block is scaled so that every block has the
    same total variance.
    """
    weights = class_weights(y, num_classes, class_weight) if isinstance(class_weight, str) else class_weight
    if spec.uses_feature_map:
        raise ConfigError(
            f"head '{spec.text}' starts with flatten, which needs the unpooled feature map: use "
            "--strategy finetune (with a frozen base for pure feature transfer)"
        )
    cfg = training or HeadTraining()
    scale = block_scale(blocks, X.shape[1])
    val_proba = None
    if spec.kind == "linear":
        head, choice, val_proba = _fit_linear(X, y, X_val, y_val, num_classes, weights, seed, cfg, scale)
    else:
        head, choice = _fit_torch(spec, X, y, X_val, y_val, num_classes, weights, seed, cfg, scale)
    return FittedProbe(head.eval(), choice, weights is not None, val_proba)


def class_weights(y: np.ndarray, num_classes: int, mode: str) -> np.ndarray | None:
    """'balanced' → n / (C · count); 'auto' → balanced when the largest class is ≥ 3x the smallest."""
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    if mode == "none":
        return None
    if mode == "auto" and counts.max() < 3 * max(counts.min(), 1):
        return None
    if mode not in ("auto", "balanced"):
        raise ConfigError(f"class_weight must be 'auto', 'balanced' or 'none'; got '{mode}'")
    return (len(y) / (num_classes * np.maximum(counts, 1))).astype(np.float32)


def fit_head(
    spec: HeadSpec,
    X: FeatureRows,
    y: np.ndarray,
    X_val: FeatureRows,
    y_val: np.ndarray,
    num_classes: int,
    *,
    weights: np.ndarray | None,
    seed: int,
    training: HeadTraining | None = None,
    blocks: Sequence[int] | None = None,
) -> tuple[nn.Sequential, HeadChoice]:
    """Train `spec` on features with the class `weights` given; returns the head and what was chosen (C,
    epochs…) for the record (`train_probe`, which this is, keeps more)."""
    probe = train_probe(spec, X, y, X_val, y_val, num_classes, class_weight=weights, seed=seed, training=training,
                        blocks=blocks)
    return probe.head, probe.choice


def block_scale(blocks: Sequence[int] | None, width: int) -> np.ndarray:
    """Per-feature factor on the standard deviation that gives each block total variance width / n_blocks."""
    if not blocks or len(blocks) < 2:
        return np.ones(width, np.float64)
    if sum(blocks) != width:
        raise ConfigError(f"feature blocks {list(blocks)} do not add up to the {width} features")
    return np.concatenate([np.full(b, np.sqrt(b * len(blocks) / width)) for b in blocks])


def chosen_val_accuracy(choice: Mapping[str, object]) -> float | None:
    """A linear head's validation accuracy at the C it chose, scored before its refit on train +
    validation (the refitted head, scored on validation, would be scored on data it was fitted to).
    None for a head that records none (an MLP: its validation only stopped the training), and for a
    report's choice that is not one head's (an ensemble's: each member's C by backbone)."""
    by_c = choice.get("val_accuracy_by_C")
    score = by_c.get(str(choice.get("C"))) if isinstance(by_c, dict) else None
    return None if score is None else float(score)


def _fit_linear(
    X: FeatureRows,
    y: np.ndarray,
    X_val: FeatureRows,
    y_val: np.ndarray,
    num_classes: int,
    weights: np.ndarray | None,
    seed: int,
    cfg: HeadTraining,
    scale: np.ndarray,
) -> tuple[nn.Sequential, HeadChoice, np.ndarray | None]:
    """The C grid on validation (each C fitted on the training rows), then the chosen C refitted on train +
    validation; also returns the chosen C's validation probabilities from the grid (None without validation)."""
    from sklearn.linear_model import LogisticRegression

    def fit(c: float, Xs: np.ndarray, yf: np.ndarray) -> LogisticRegression:
        sample_weight = None if weights is None else weights[yf]
        model = LogisticRegression(C=c, max_iter=cfg.max_iter, random_state=seed)
        return model.fit(Xs, yf, sample_weight=sample_weight)

    # each set standardised once, in float32 (what the head computes in): the C grid reuses it
    mean, std = _moments((X,), scale)
    # both sets' moments before anything is written over a disposable matrix
    mean_all, std_all = _moments((X, X_val), scale) if len(X_val) else (mean, std)
    into = _writable(X, X_val)
    scores: dict[float, float] = {}
    heldout: dict[float, np.ndarray] = {}
    if len(X_val):
        if into is None:
            Xs, Xv = _standardized((X,), mean, std), _standardized((X_val,), mean, std)
        else:  # views of the matrix, written over
            Xs, Xv = np.split(into.standardized(mean, std), [len(X)])
        for c in cfg.c_grid:
            grid_model = fit(c, Xs, y)
            heldout[c] = np.zeros((len(Xv), num_classes), np.float64)  # classes absent from training: 0
            heldout[c][:, grid_model.classes_] = grid_model.predict_proba(Xv)
            pred = heldout[c].argmax(axis=1)  # = grid_model.predict(Xv): classes_ are sorted
            if weights is None:
                scores[c] = float(np.mean(pred == y_val))
            else:
                scores[c] = float(np.mean([np.mean(pred[y_val == k] == k) for k in np.unique(y_val)]))
        del Xs, Xv
        best_c = max(cfg.c_grid, key=lambda c: (scores[c], -abs(np.log10(c))))
        mean, std = mean_all, std_all
        Xa = _standardized((X, X_val), mean, std) if into is None else into.standardized(mean, std)
        model = fit(best_c, Xa, np.concatenate([y, y_val]))
        del Xa
    else:
        best_c = 1.0
        model = fit(best_c, _standardized((X,), mean, std) if into is None else into.standardized(mean, std), y)
    del into
    head = build_head(HeadSpec("linear", "linear"), X.shape[1], num_classes)
    standardize, linear = head[0], head[1]
    assert isinstance(standardize, Standardize) and isinstance(linear, nn.Linear)  # build_head's linear layout
    standardize.mean.copy_(torch.from_numpy(mean.astype(np.float32)))
    standardize.std.copy_(torch.from_numpy(std.astype(np.float32)))
    coef, intercept = model.coef_, model.intercept_
    classes = list(model.classes_)
    weight = np.zeros((num_classes, X.shape[1]), np.float32)
    bias = np.full(num_classes, -1e4, np.float32)  # classes absent from training are never predicted
    if coef.shape[0] == 1:  # binary: sklearn keeps one row for class 1
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    for row, k in enumerate(classes):
        weight[k], bias[k] = coef[row], intercept[row]
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight))
        linear.bias.copy_(torch.from_numpy(bias))
    chosen: HeadChoice = {"C": best_c, "val_accuracy_by_C": {str(c): s for c, s in scores.items()}}
    return head.eval(), chosen, heldout.get(best_c)


#: rows standardised at a time: bounds the float64 temporaries to ~32 MB whatever the width
_BLOCK_VALUES = 1 << 22
#: rows written over a disposable matrix at a time (`_InPlace`): ~8 MB float64 temporaries. Each row is
#: standardised on its own, so the block size leaves the numbers as they are; 32 MB blocks, once freed, stayed
#: in the heap (glibc's mmap threshold rises to them) under the head's fits: +78 MB at the text fit's peak
_WRITE_BLOCK_VALUES = 1 << 20


def _blocks(arrays: Sequence[FeatureRows], values: int) -> Iterator[tuple[FeatureRows, int, int]]:
    """(array, start, stop) row blocks over `arrays`, each of at most ~`values` values."""
    for a in arrays:
        step = max(1, values // max(1, a.shape[1]))
        for start in range(0, len(a), step):
            yield a, start, min(start + step, len(a))


def _moments(arrays: Sequence[FeatureRows], scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and (std + 1e-6) * scale over the rows of `arrays` taken together (`row_moments`)."""
    mean, std = row_moments(arrays)
    return mean, (std + 1e-6) * scale


def row_moments(arrays: Sequence[FeatureRows]) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation over the rows of `arrays` taken together, in float64, a block of
    rows at a time (two passes: no copy of the data, no catastrophic cancellation)."""
    n = sum(len(a) for a in arrays)
    width = arrays[0].shape[1]
    total = np.zeros(width, np.float64)
    for a, i, j in _blocks(arrays, _BLOCK_VALUES):
        total += a[i:j].sum(axis=0, dtype=np.float64)
    mean = total / max(n, 1)
    squares = np.zeros(width, np.float64)
    for a, i, j in _blocks(arrays, _BLOCK_VALUES):
        centred = a[i:j] - mean
        squares += np.square(centred, out=centred).sum(axis=0)
        del centred
    trim_heap()  # the float64 blocks (32 MB each) would stay in the heap under the fits that follow
    return mean, np.sqrt(squares / max(n, 1))


#: a disposable matrix is standardised in place when at most this fraction of its rows' values are non-zero:
#: their exact copy (CSR: a value and a column index, 8 bytes, per non-zero) is then at most half the
#: standardised copy it saves (4 bytes per value). MiniLM + hashed n-grams of short texts: ~3% non-zero.
IN_PLACE_MAX_NONZERO = 0.25


class _InPlace:
    """The standardised rows written over a disposable feature matrix, from an exact sparse copy of them.

    The rows (training, then validation) are kept as CSR, values as they are (float32): each
    standardisation writes `(row - mean) / std` of the same float32 values, in the same arithmetic, as
    `_standardized` does into a new array (the same numbers bit for bit), into the first rows of the matrix
    itself. MiniLM + hashed n-grams of 2,550 texts: 171 MB standardised copy → an 11 MB sparse one."""

    def __init__(self, buffer: np.ndarray, rows: csr_array) -> None:
        self.buffer, self.rows = buffer, rows

    def standardized(self, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        """The rows standardised with `mean` and `std`, in float32: the first rows of the matrix, overwritten."""
        n = int(self.rows.shape[0])
        step = max(1, _WRITE_BLOCK_VALUES // max(1, len(mean)))
        for start in range(0, n, step):
            stop = min(start + step, n)
            self.buffer[start:stop] = _scaled(self.rows[start:stop].toarray(), mean, std)
        trim_heap()
        return self.buffer[:n]


def _writable(X: FeatureRows, X_val: FeatureRows) -> _InPlace | None:
    """Where the standardised rows can be written: over the matrix of `X` and `X_val` when the caller gave it
    up (`Rows.disposable`, both rows of it), it is float32 and mostly zeros (`IN_PLACE_MAX_NONZERO`); None:
    into a new array."""
    if not (isinstance(X, Rows) and isinstance(X_val, Rows) and X.disposable and X_val.values is X.values):
        return None
    values = X.values
    if values.dtype != np.float32 or not values.flags.c_contiguous or not values.flags.writeable:
        return None
    if len(np.union1d(X.index, X_val.index)) < len(X) + len(X_val):  # a row in both: not all can be written
        return None
    blocks = list(_blocks((X, X_val), _WRITE_BLOCK_VALUES))
    nonzero = sum(int(np.count_nonzero(a[i:j])) for a, i, j in blocks)
    if nonzero > IN_PLACE_MAX_NONZERO * (len(X) + len(X_val)) * values.shape[1]:
        return None
    from scipy import sparse

    rows = sparse.vstack([sparse.csr_array(a[i:j]) for a, i, j in blocks], format="csr")
    trim_heap()
    return _InPlace(values, rows)


def _scaled(rows: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(rows − mean) / std in float64, divided in place: one float64 temporary of the block, not two."""
    out = rows - mean
    out /= std
    return out


def _standardized(arrays: Sequence[FeatureRows], mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(rows of `arrays`, stacked − mean) / std as one float32 array, filled a block of rows at a time."""
    out = np.empty((sum(len(a) for a in arrays), len(mean)), np.float32)
    row = 0
    for a, i, j in _blocks(arrays, _BLOCK_VALUES):
        out[row : row + j - i] = _scaled(a[i:j], mean, std)
        row += j - i
    return out


def _fit_torch(
    spec: HeadSpec,
    X: FeatureRows,
    y: np.ndarray,
    X_val: FeatureRows,
    y_val: np.ndarray,
    num_classes: int,
    weights: np.ndarray | None,
    seed: int,
    cfg: HeadTraining,
    scale: np.ndarray,
) -> tuple[nn.Sequential, HeadChoice]:
    torch.manual_seed(seed)
    head = build_head(spec, X.shape[1], num_classes)
    standardize = head[0]
    assert isinstance(standardize, Standardize)  # build_head puts it first for pooled features
    mean, std = _moments((X,), scale)
    standardize.mean.copy_(torch.from_numpy(mean.astype(np.float32)))
    standardize.std.copy_(torch.from_numpy(std.astype(np.float32)))
    return train_on_features(head, np.asarray(X, np.float32), y, np.asarray(X_val, np.float32), y_val, weights=weights,
                             seed=seed, training=cfg)


def train_on_features(
    head: HeadT,
    X: np.ndarray,
    y: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    weights: np.ndarray | None,
    seed: int,
    training: HeadTraining,
) -> tuple[HeadT, HeadChoice]:
    """Minibatch AdamW on cached features, keeping the epoch of lowest validation loss.

    Shared by every head trained with torch on features (MLP, layer specs, gated fusion).
    Stops after `patience` epochs without improvement; same seed, same data → same head.
    """
    cfg = training
    generator = torch.Generator().manual_seed(seed)
    # as they are when already float32 (no copy of the features)
    Xt, yt = torch.from_numpy(np.asarray(X, dtype=np.float32)), torch.from_numpy(y.astype(np.int64))
    Xv, yv = torch.from_numpy(np.asarray(X_val, dtype=np.float32)), torch.from_numpy(y_val.astype(np.int64))
    loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else torch.from_numpy(weights))
    optimiser = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    has_batchnorm = any(isinstance(m, nn.BatchNorm1d) for m in head.modules())
    best_loss, best_state, best_epoch, since_best = float("inf"), None, 0, 0
    for epoch in range(cfg.epochs):
        head.train()
        order = torch.randperm(len(Xt), generator=generator)
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            if len(idx) < 2 and has_batchnorm:
                continue
            optimiser.zero_grad()
            loss_fn(head(Xt[idx]), yt[idx]).backward()
            optimiser.step()
        if not len(Xv):
            best_state, best_epoch = None, epoch + 1
            continue
        head.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(head(Xv), yv))
        if val_loss < best_loss - 1e-4:
            best_loss, best_epoch, since_best = val_loss, epoch + 1, 0
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
        else:
            since_best += 1
            if since_best >= cfg.patience:
                break
    if best_state is not None:
        head.load_state_dict(best_state)
    return head.eval(), {"epochs": best_epoch, "val_loss": best_loss if len(Xv) else None}
