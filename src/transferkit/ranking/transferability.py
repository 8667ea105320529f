"""What every transferability estimator shares: the fit/score contract and input validation.

An estimator answers one question — how well will these target labels be predicted from this
backbone's output? — with one number, ``score_``, where **higher is better** for every estimator.
Validation lives here so that every estimator accepts and rejects the same inputs with the same
messages: a 2-D finite array (computed on as a float64 copy, so the caller's array is never
modified) and labels of any type (ints, strings…), encoded to ``0..C-1`` by sorted value with
``np.unique``, at least two classes, and at least ``min_samples_per_class`` samples in each.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Literal, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import InvalidParameterError

from transferkit.errors import ConfigError, DataError, NotFittedError

InputKind = Literal["features", "source_probabilities"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


def as_float_matrix(X: ArrayLike, what: str = "features") -> FloatArray:
    """Return ``X`` as a new 2-D finite float64 array, or raise `DataError` saying what is wrong.

    Always a copy: estimators may then work in place without touching the caller's data.
    """
    arr = np.asarray(X)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataError(f"{what} must be numeric; got an array of dtype {arr.dtype}.")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{what} must be real numbers; got complex dtype {arr.dtype}.")
    if arr.ndim != 2:
        raise DataError(
            f"{what} must be a 2-D array (n_samples, n_features); got shape {arr.shape}. "
            "Pool or flatten per-sample feature maps first, e.g. X.reshape(len(X), -1)."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{what} are empty: shape {arr.shape}; expected at least one row and column.")
    out = np.array(arr, dtype=np.float64, copy=True)
    finite = np.isfinite(out)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        n_nan = int(np.isnan(out).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise DataError(
            f"{what} contain {n_nan} NaN and {n_inf} infinite values in {bad_rows.size} rows "
            f"(first: row {bad_rows[0]}); expected finite numbers. Drop or re-extract those samples "
            "(a NaN embedding usually means a corrupt input or an fp16 overflow)."
        )
    return out


def as_probability_matrix(P: ArrayLike, what: str = "source probabilities") -> FloatArray:
    """Return ``P`` as a new float64 (N, Z) array of rows on the probability simplex.

    Rows must be non-negative and sum to 1 within 1e-3 (float16/32 softmax output passes); they
    are renormalised exactly. Anything else — typically logits — raises `DataError`.
    """
    out = as_float_matrix(P, what)
    sums = out.sum(axis=1)
    if (out < 0).any() or not np.allclose(sums, 1.0, rtol=0.0, atol=1e-3):
        raise DataError(
            f"{what} must be probabilities (non-negative rows summing to 1); got values in "
            f"[{out.min():.3g}, {out.max():.3g}] and row sums in [{sums.min():.3g}, {sums.max():.3g}]. "
            "If these are logits, apply a softmax over the source classes first."
        )
    out /= sums[:, None]
    return out


def encode_labels(
    y: ArrayLike,
    n_samples: int,
    min_samples_per_class: int = 1,
    *,
    min_classes: int = 2,
    what: str = "labels",
) -> tuple[IntArray, np.ndarray]:
    """Encode labels to ``0..C-1`` (sorted order of ``np.unique``); return ``(codes, classes)``.

    Raises `DataError` for a label array of the wrong shape or length, missing (NaN/None) labels,
    fewer than ``min_classes`` classes, or a class with fewer than ``min_samples_per_class`` samples.
    """
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(
            f"{what} must be a 1-D array with one label per sample; got shape {arr.shape}. "
            "Pass class labels, not one-hot rows (use y.argmax(axis=1) for those)."
        )
    if arr.shape[0] != n_samples:
        raise DataError(f"got {n_samples} samples but {arr.shape[0]} {what}; expected one per sample.")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise DataError(
            f"{what} contain {int(np.isnan(arr).sum())} NaN values; drop unlabelled samples first."
        )
    if arr.dtype == object and any(v is None for v in arr):
        raise DataError(f"{what} contain None; drop unlabelled samples first.")
    try:
        classes, codes = np.unique(arr, return_inverse=True)
    except TypeError as exc:
        raise DataError(
            f"{what} cannot be sorted ({exc}); use labels of one type (all str or all int)."
        ) from exc
    codes = codes.reshape(-1).astype(np.intp)
    if classes.size < min_classes:
        found = f"only one class ({classes[0]!r})" if classes.size else "no labels"
        raise DataError(
            f"found {found} among {n_samples} samples; transferability needs at least {min_classes} "
            "classes. Check that the labels were read from the right column or folder."
        )
    counts = np.bincount(codes, minlength=classes.size)
    if min_samples_per_class > 1 and (counts < min_samples_per_class).any():
        small = [f"{classes[c]!r} ({counts[c]})" for c in np.flatnonzero(counts < min_samples_per_class)]
        shown = ", ".join(small[:5]) + (f" and {len(small) - 5} more" if len(small) > 5 else "")
        raise DataError(
            f"this estimator needs at least {min_samples_per_class} samples per class; too few in: {shown}. "
            "Add samples to those classes or drop them."
        )
    return codes, classes


class ParameterError(ConfigError, InvalidParameterError):
    """A constructor parameter outside its declared constraint: ours (`ConfigError`, shown by the CLI without a
    traceback) and scikit-learn's (`InvalidParameterError`, what its estimator checks expect)."""


def validate_parameters(estimator: BaseEstimator) -> None:
    """scikit-learn's `_validate_params` on `estimator`'s `_parameter_constraints`, raising `ParameterError`."""
    try:
        estimator._validate_params()
    except InvalidParameterError as exc:
        raise ParameterError(str(exc)) from None


class TransferabilityEstimator(BaseEstimator, ABC):
    """Base of the ranking estimators: ``fit(X, y)`` stores the score in ``score_``.

    Subclasses set ``min_samples_per_class`` and ``input_kind`` and implement ``_compute`` on
    validated input (a float64 copy ``X`` and codes ``y`` in ``0..n_classes-1``). ``__init__`` of a
    subclass only stores its keyword parameters; checking them happens in ``_check_params``.
    """

    #: Every score in transferkit is oriented so that a larger value means better transfer.
    higher_is_better: ClassVar[bool] = True
    #: What ``fit`` takes as ``X``: backbone features, or the source head's class probabilities.
    input_kind: ClassVar[InputKind] = "features"
    #: Fewest samples a class may have; fewer raises `DataError`.
    min_samples_per_class: ClassVar[int] = 1
    #: What each ``__init__`` parameter accepts, in scikit-learn's format (checked at the start of ``fit``).
    _parameter_constraints: ClassVar[dict[str, list[object]]] = {}

    score_: float
    classes_: np.ndarray
    n_samples_: int
    n_features_in_: int

    def fit(self, X: ArrayLike, y: ArrayLike) -> Self:
        """Validate the input, compute the score into ``score_`` and return ``self``.

        A failed fit leaves the estimator unfitted, never holding a previous fit's results.
        """
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)
        self._check_params()
        data = self._validate_input(X)
        codes, classes = encode_labels(y, data.shape[0], self.min_samples_per_class)
        self.classes_ = classes
        self.n_samples_, self.n_features_in_ = data.shape
        score = float(self._compute(data, codes, classes.size))
        if not np.isfinite(score):
            raise DataError(
                f"{type(self).__name__} produced a non-finite score ({score}) on input of shape "
                f"{data.shape}; the input is degenerate in a way this estimator does not handle. "
                "Please report it with the data shape."
            )
        self.score_ = score
        return self

    def fit_score(self, X: ArrayLike, y: ArrayLike) -> float:
        """Shorthand for ``fit(X, y).score_``."""
        return self.fit(X, y).score_

    if not TYPE_CHECKING:  # at run time only: the type checker still flags an attribute that does not exist

        def __getattr__(self, name: str) -> object:
            # Only reached when normal lookup fails: reading a learned attribute (``score_``…) of an
            # unfitted estimator says to call fit, rather than a bare AttributeError.
            if name.endswith("_") and not name.startswith("_") and "score_" not in self.__dict__:
                cls = type(self).__name__
                raise NotFittedError(f"This {cls} is not fitted yet: call {cls}.fit(...) before reading {name}.")
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- for subclasses -------------------------------------------------------------------------

    def _check_params(self) -> None:
        """Raise `ConfigError` for an invalid constructor parameter (called at the start of ``fit``): scikit-learn's
        `_validate_params` against the class's `_parameter_constraints`."""
        validate_parameters(self)

    def _validate_input(self, X: ArrayLike) -> FloatArray:
        """Return a validated float64 copy of ``X``; estimators on probabilities override this."""
        return as_float_matrix(X, "features")

    @abstractmethod
    def _compute(self, X: FloatArray, y: IntArray, n_classes: int) -> float:
        """The score (higher is better) of validated ``X`` and label codes ``y`` in ``0..n_classes-1``."""
