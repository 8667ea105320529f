"""Feature alignment between a labelled source domain and an unlabelled target domain.

A probe's head is trained on the backbone's features of the training data (the *source*); the
model is used on inputs from somewhere else (the *target*), whose features are shifted. Given the
target's unlabelled features, an alignment is an affine map fitted once and applied to every
feature vector before the head sees it — at prediction time, in the bundle and in the exported
graph:

    x  ->  (x - mean_in) @ A + mean_out        (row vectors; mean_in, mean_out: [d]; A: [d, d] or diagonal)

It maps the target's features into the source's feature distribution, so the head trained on the
source reads them as it read its training data. Two ways to fit it, from the literature:

- **standardize** (per-domain standardisation): each feature dimension of the target is given the
  source's mean and standard deviation, A = diag(std_source / std_target). First and second
  moments per dimension; the feature-level analogue of AdaBN (Li et al., ICLR-W 2017).
- **coral** (CORrelation ALignment; Sun, Feng & Saenko, AAAI 2016): the target is whitened with its
  own covariance and re-coloured with the source's, A = C_t^(-1/2) C_s^(1/2), so its second-order
  statistics — correlations included — match the source's. (The paper writes the mirror image,
  source re-coloured by the target, and trains the classifier on that; mapping the target into the
  source instead puts the transform in the prediction path, where a saved model can carry it.)

**Covariance shrinkage** (the stated rule). A covariance of d = 1,280 dimensions from a few hundred
target inputs is singular; its inverse square root is noise. Each covariance is estimated by
Ledoit–Wolf shrinkage (Ledoit & Wolf, J. Multivariate Anal. 2004; scikit-learn's `ledoit_wolf`)
applied to the *standardised* features, i.e. the correlation matrix is shrunk toward the identity
with the analytic, data-chosen intensity — Schäfer & Strimmer's (2005) "target D", which keeps each
dimension's own variance. The sample covariance is never inverted; with few inputs the shrinkage
tends to 1 and CORAL becomes per-domain standardisation, so it degrades gracefully instead of
blowing up. The paper's own choice, C + I, depends on the features' scale; this rule does not.

**auto** first decides *whether* the target differs at all, by a two-sample test at α = 0.05
(`adapt.shift_test`: Kolmogorov–Smirnov on 32 principal components with Bonferroni, the rule of
Rabanser, Günnemann & Lipton, NeurIPS 2019). No shift detected: nothing is aligned, and the model is
the plain probe (James–Stein alone still lost 0.7 to 4.1 points on our no-shift controls: a 97-input
target in 1,280 dimensions reads 2.4 standard errors of shift). Shift detected: per-domain
standardisation with the target's statistics *shrunk* toward the source's by James–Stein
(James & Stein 1961; Efron & Morris, JASA 1973). Each domain's per-dimension mean and
spread are estimates; from a few hundred target inputs in 1,280 dimensions their differences from
the source's are partly sampling noise, and standardising with noise moves every target feature by
it (on icons, half of the in-domain validation given as target lost 10.3 points to plain
standardisation). So the mean shift δ (per dimension, in units of its own standard error
sqrt(σ_t²/n_t + σ_s²/n_s)) is shrunk by the positive-part James–Stein factor
λ = max(0, 1 − (d − 2)/‖z‖²), z the standardised shift, and so is the log ratio of the spreads
(standard error sqrt((κ_t − 1)/(4 n_t) + (κ_s − 1)/(4 n_s)), κ each domain's kurtosis). Where
nothing moved, ‖z‖² ≈ d and λ ≈ 0: nothing is aligned; where the shift is many standard errors, λ → 1
and auto is plain standardisation. One rule, no threshold; per feature block of a concatenation.
A probe then weighs this one map for the whole target against the target's latent domains each mapped
this way on its own (`adapt.latent`: a target of several new speakers or cameras), by the information
of its head's predictions on the target, and keeps the better.
CORAL was auto at first (Sun, Feng & Saenko 2016 report it at least as good as standardisation), but
on our own shifted sets its full-covariance map lost where standardisation lost little: icons of
unseen themes (`benchmarks/adapt.py --sets icons`, Lite0, half of the test split as target) 78.0%
plain, 76.6% standardised, 64.1% CORAL — and the textbook CORAL, written in the benchmark, lost 2.4
points there too. CORAL stays an explicit choice. Self-training (pseudo-labels on the target,
`adapt.selftrain`) is an option, not part of auto: under a large shift confident wrong labels
reinforce themselves (Zou et al., ECCV 2018).

`batch_standardizer` is test-time adaptation: a batch's own statistics stand in for a stored target
(refused below `MIN_BATCH_INPUTS`; see its docstring).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from transferkit.errors import ConfigError, DataError
from transferkit.params import ADAPT_METHODS

#: the alignments `fit_alignment` knows (`auto` resolves to one of them; `none` is no alignment)
METHODS = ADAPT_METHODS
#: fewer target inputs than this cannot estimate a domain's mean and spread: an error
MIN_TARGET_INPUTS = 10
#: a batch adapted with its own statistics must have at least this many inputs: a standard deviation
#: from n inputs is off by about 1/sqrt(2n) relative (25% at n = 8, 12.5% at 32), and a batch
#: of a few inputs is mostly one class, so its mean is the class's, not the domain's
MIN_BATCH_INPUTS = 32
#: CORAL's matrix is [d, d]: a feature block wider than this (hashed n-grams: 16,384) is aligned per
#: dimension (standardisation) instead — its covariance could be neither stored nor estimated
MAX_CORAL_DIM = 4096
#: a dimension whose spread is below this (relative to the largest) is constant: it is not rescaled
_EPS = 1e-6


def aligned_with(module: nn.Module, values: np.ndarray) -> np.ndarray:
    """Features mapped by an alignment's torch module (any kind: one map, per block, per latent domain), as
    float32 numpy: what predict computes."""
    with torch.no_grad():
        return module(torch.from_numpy(np.asarray(values, np.float32))).numpy()


def resolve_method(method: str) -> str:
    """The method's name, checked (`auto` stays `auto`: James–Stein-shrunk standardisation, see the module
    docstring)."""
    if method not in METHODS:
        raise ConfigError(f"adapt method must be one of {' | '.join(METHODS)}; got {method!r}")
    return method


# -- the fitted transform --------------------------------------------------------------------------


@dataclass
class Alignment:
    """A fitted affine map x -> (x - mean_in) @ A + mean_out; `matrix` None means A = diag(scale)."""

    method: str
    mean_in: np.ndarray
    mean_out: np.ndarray
    scale: np.ndarray | None = None
    matrix: np.ndarray | None = None
    #: facts for the summary: inputs on each side, the shrinkage intensities used
    info: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if (self.scale is None) == (self.matrix is None):
            raise ValueError("an Alignment has exactly one of scale (diagonal) or matrix")

    @property
    def dim(self) -> int:
        return int(self.mean_in.shape[0])

    def apply(self, values: np.ndarray) -> np.ndarray:
        """The aligned features (float32), computed as the torch module computes them."""
        return aligned_with(self.module(), values)

    def module(self) -> AlignModule:
        return AlignModule.from_alignment(self)

    def tensors(self, prefix: str = "align.") -> dict[str, torch.Tensor]:
        """What a bundle stores (safetensors), read back by `AlignModule.from_tensors`."""
        return {prefix + k: v.clone().contiguous() for k, v in self.module().state_dict().items()}


class AlignModule(nn.Module):
    """The alignment as a torch module (a bundle's `align.*` tensors; a node of the exported graph).

    Buffers: `mean_in` [d], `mean_out` [d], and either `matrix` [d, d] or `scale` [d].
    """

    mean_in: torch.Tensor
    mean_out: torch.Tensor
    weight: torch.Tensor

    def __init__(self, mean_in: torch.Tensor, mean_out: torch.Tensor, weight: torch.Tensor) -> None:
        super().__init__()
        if weight.dim() not in (1, 2) or mean_in.shape != mean_out.shape or weight.shape[0] != mean_in.shape[0]:
            raise ValueError(f"inconsistent alignment shapes: {tuple(mean_in.shape)}, {tuple(mean_out.shape)}, "
                             f"{tuple(weight.shape)}")
        self.register_buffer("mean_in", mean_in.float())
        self.register_buffer("mean_out", mean_out.float())
        self.register_buffer("weight", weight.float())
        self.diagonal = weight.dim() == 1

    @classmethod
    def from_alignment(cls, alignment: Alignment) -> AlignModule:
        weight = alignment.scale if alignment.matrix is None else alignment.matrix
        assert weight is not None
        return cls(torch.from_numpy(np.asarray(alignment.mean_in, np.float32)),
                   torch.from_numpy(np.asarray(alignment.mean_out, np.float32)),
                   torch.from_numpy(np.asarray(weight, np.float32)))

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str = "align.") -> AlignModule | None:
        """The module saved under `prefix`, or None when the bundle has none (a bundle without adaptation)."""
        keys = [prefix + k for k in ("mean_in", "mean_out", "weight")]
        if not all(k in tensors for k in keys):
            return None
        return cls(*(tensors[k] for k in keys))

    @property
    def dim(self) -> int:
        return int(self.mean_in.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x.float() - self.mean_in
        moved = centred * self.weight if self.diagonal else centred @ self.weight
        return moved + self.mean_out


# -- statistics ------------------------------------------------------------------------------------


def _as_matrix(values: np.ndarray, what: str, minimum: int) -> np.ndarray:
    x = np.asarray(values, np.float64)
    if x.ndim != 2:
        raise DataError(f"{what}: expected features [n, d]; got shape {x.shape}")
    if len(x) < minimum:
        raise DataError(f"{what}: {len(x)} input(s); adaptation needs at least {minimum} to estimate the domain's "
                        "statistics")
    if not np.isfinite(x).all():
        raise DataError(f"{what}: features contain NaN or infinity")
    return x


def _spread_and_constant(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension standard deviation with constant dimensions held at 1 (they are not rescaled), and
    which dimensions those are (spread at or below `_EPS` of the largest): one pass over `x`."""
    std = x.std(axis=0)
    constant = ~(std > _EPS * max(float(std.max(initial=0.0)), 1.0))
    return np.where(constant, 1.0, std), constant


def _spread(x: np.ndarray) -> np.ndarray:
    return _spread_and_constant(x)[0]


def _constant(x: np.ndarray) -> np.ndarray:
    return _spread_and_constant(x)[1]


def shrunk_covariance(x: np.ndarray) -> tuple[np.ndarray, float]:
    """The covariance of `x` [n, d] by Ledoit–Wolf shrinkage of its correlations toward the identity.

    Returns (covariance [d, d], shrinkage intensity in [0, 1]). Each dimension keeps its own
    variance; only the off-diagonal correlations are shrunk, by the Ledoit–Wolf analytic intensity
    computed on the standardised features (Schäfer & Strimmer's target D).
    """
    std = _spread(x)
    z = (x - x.mean(axis=0)) / std
    correlation, shrinkage = _ledoit_wolf(z)
    return correlation * np.outer(std, std), shrinkage


def _ledoit_wolf(z: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit & Wolf (2004), Lemma 3.2–3.4, on centred `z` [n, d]: S shrunk toward mu·I with the analytic
    intensity (the formula of scikit-learn's `ledoit_wolf`, with one [d, d] product instead of three)."""
    n, d = z.shape
    sample = z.T @ z / n
    mu = float(np.trace(sample)) / d
    delta = float(np.sum(sample**2)) - 2 * mu * float(np.trace(sample)) + d * mu**2  # ||S - mu I||_F^2
    # (1/n^2) sum_k ||z_k z_k' - S||_F^2
    beta = float(np.sum(np.sum(z**2, axis=1) ** 2)) / n**2 - float(np.sum(sample**2)) / n
    shrinkage = 1.0 if delta <= 0 else min(max(beta, 0.0), delta) / delta
    shrunk = (1 - shrinkage) * sample
    shrunk[np.diag_indices(d)] += shrinkage * mu
    return shrunk, shrinkage


def _matrix_power(c: np.ndarray, power: float) -> np.ndarray:
    """c^power of a symmetric positive semi-definite matrix (eigenvalues floored relative to the largest).

    LAPACK's relatively robust representations (`evr`) rather than numpy's divide and conquer: about 3x
    faster on a 1,280-d covariance here, the same eigenpairs to rounding. On one BLAS thread: the
    reduction to tridiagonal form is memory-bound, and on a busy 2-core machine OpenBLAS's second
    thread made it 4x slower (1,280-d, load ~16: 16.6 s on 2 threads, 3.9 s on 1; numpy's eigh 26.2 s
    against 3.8 s)."""
    from scipy.linalg import eigh

    from transferkit.runtime import threads_limited

    with threads_limited(1, "blas"):
        w, v = eigh((c + c.T) / 2, driver="evr", check_finite=False)
    floor = max(float(w.max(initial=0.0)), 1e-12) * 1e-10
    w = np.clip(w, floor, None)
    return (v * w**power) @ v.T


# -- fitting ---------------------------------------------------------------------------------------


def fit_standardize(source: np.ndarray, target: np.ndarray) -> Alignment:
    """Per-domain standardisation: the target's per-dimension mean and spread become the source's."""
    s = _as_matrix(source, "source features", 2)
    t = _as_matrix(target, "target features", MIN_TARGET_INPUTS)
    _check_dims(s, t)
    # a dimension constant in the source gets the source's constant (scale 0): spreading the target's own
    # variation there would hand the head values it never saw (speech: one GE2E dimension, 3.9% accuracy)
    spread_s, constant_s = _spread_and_constant(s)
    scale = np.where(constant_s, 0.0, spread_s / _spread(t))
    return Alignment("standardize", mean_in=t.mean(axis=0), mean_out=s.mean(axis=0), scale=scale,
                     info={"source_inputs": len(s), "target_inputs": len(t)})


def fit_shrunk_standardize(source: np.ndarray, target: np.ndarray, source_weights: np.ndarray | None = None
                           ) -> Alignment:
    """`auto`: per-domain standardisation with the target's mean and spread shrunk toward the source's by the
    positive-part James–Stein factor of their differences in standard-error units (see the module docstring).

    `info` holds the two factors (`mean_shrinkage`: λ of the means, `spread_shrinkage`: λ of the log
    spreads; 0 = nothing moved, 1 = plain standardisation) and the shift statistics ‖z‖²/d of each (≈ 1
    when the domains do not differ).

    `source_weights` (one per source row): the source's moments are weighted — the source as it would be
    with the target's class proportions (`adapt.priors`); its number of inputs is then the effective one,
    (Σw)² / Σw²."""
    return _fit_shrunk_standardize(source, target, source_weights)[0]


def _fit_shrunk_standardize(source: np.ndarray, target: np.ndarray, source_weights: np.ndarray | None = None
                            ) -> tuple[Alignment, np.ndarray]:
    """`fit_shrunk_standardize`, and the source's per-dimension standard deviation it computed (the shift
    test reads it rather than computing it again; the source's mean is the alignment's `mean_out`)."""
    s = _as_matrix(source, "source features", 2)
    t = _as_matrix(target, "target features", MIN_TARGET_INPUTS)
    _check_dims(s, t)
    w = None if source_weights is None else np.asarray(source_weights, np.float64) / np.sum(source_weights)
    ns, nt = (len(s) if w is None else 1.0 / float(w @ w)), len(t)
    (mean_s, std_s, squares_s), (mean_t, std_t, squares_t) = _moments(s, w), _moments(t)
    floor = _EPS * max(float(std_s.max(initial=0.0)), float(std_t.max(initial=0.0)), 1.0)
    live = (std_s > floor) & (std_t > floor)  # a dimension constant in either domain is left as it is
    d = int(live.sum())
    mean_in, spread_in = mean_s.copy(), std_s.copy()
    lam_mean = lam_spread = 0.0
    ratio_mean = ratio_spread = 0.0
    if d >= 3:
        sl, tl = std_s[live], std_t[live]
        shift = mean_t[live] - mean_s[live]
        z = shift / np.sqrt(tl**2 / nt + sl**2 / ns)
        lam_mean, ratio_mean = _james_stein(z)
        log_ratio = np.log(tl / sl)
        kurt_s, kurt_t = _kurtosis(squares_s, std_s, w, floor)[live], _kurtosis(squares_t, std_t, floor=floor)[live]
        # var(log sd) ≈ (κ − 1)/(4n); κ ≥ 1 always, floored so that no dimension has zero noise
        noise = np.maximum(kurt_t - 1, 1e-3) / (4 * nt) + np.maximum(kurt_s - 1, 1e-3) / (4 * ns)
        lam_spread, ratio_spread = _james_stein(log_ratio / np.sqrt(noise))
        mean_in[live] = mean_s[live] + lam_mean * shift
        spread_in[live] = sl * np.exp(lam_spread * log_ratio)
    scale = np.ones_like(std_s)
    scale[live] = std_s[live] / spread_in[live]
    return Alignment("standardize (shrunk)", mean_in=mean_in, mean_out=mean_s, scale=scale,
                     info={"source_inputs": ns, "target_inputs": nt, "mean_shrinkage": round(lam_mean, 4),
                           "spread_shrinkage": round(lam_spread, 4), "mean_shift_ratio": round(ratio_mean, 3),
                           "spread_shift_ratio": round(ratio_spread, 3)}), std_s


def _moments(x: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, standard deviation, squared deviations from the mean [n, d]) per dimension, from one centred
    copy of `x`: the mean and spread are `x.mean(axis=0)` and `x.std(axis=0)` to the bit (numpy's own steps),
    the squares are kept for `_kurtosis` instead of being computed again. With `weights` (summing to 1):
    the weighted mean and spread."""
    mean = x.mean(axis=0) if weights is None else weights @ x
    squares = np.subtract(x, mean)
    np.square(squares, out=squares)
    return mean, np.sqrt(squares.sum(axis=0) / len(x) if weights is None else weights @ squares), squares


def _kurtosis(squares: np.ndarray, std: np.ndarray, weights: np.ndarray | None = None,
              floor: float = 0.0) -> np.ndarray:
    """Per dimension, the mean of ((x − mean) / std)⁴ from the squared deviations `squares` (overwritten):
    (squares / std²)², two multiplications rather than `** 4` (numpy's power with exponent 4 calls pow()
    per element: 0.9 s of auto's 2 s on man pages' 890 × 16,384 n-grams). A dimension whose spread is at or
    below `floor` counts as constant and reads its squares as they are: with source weights, a class weighted
    to almost nothing leaves spreads of 1e-100 whose ratios overflowed (the caller leaves those dimensions
    alone anyway). The same value up to rounding (a few units in the last place)."""
    variance = std * std
    np.divide(squares, np.where(std > floor, variance, 1.0), out=squares)
    np.square(squares, out=squares)
    return squares.mean(axis=0) if weights is None else weights @ squares


def _james_stein(z: np.ndarray) -> tuple[float, float]:
    """(positive-part James–Stein factor max(0, 1 − (d − 2)/‖z‖²), ‖z‖²/d) of a shift `z` [d] in
    standard-error units: the factor is the share of the shift kept."""
    d = len(z)
    energy = float(z @ z)
    factor = 0.0 if energy <= 0 else max(0.0, 1.0 - (d - 2) / energy)
    return factor, energy / max(d, 1)


def auto_outcome(alignment: Alignment | BlockAlignment) -> tuple[bool, str]:
    """(whether `auto`'s alignment moves anything, the sentence the fit summary shows): nothing when the
    shift test (`adapt.shift_test`, its numbers in the first part's `info`) detected no shift, or when
    James–Stein keeps none of it."""
    parts = alignment.parts if isinstance(alignment, BlockAlignment) else [alignment]
    first = parts[0].info or {}
    if "shift_detected" in first:
        from transferkit.adapt.shift_test import ShiftTest

        test = ShiftTest(detected=bool(first["shift_detected"]), p_value=first["shift_p_value"],
                         threshold=first["shift_threshold"], components=int(first["shift_components"]),
                         statistic=first.get("shift_statistic", float("nan")))
        if not test.detected:
            return False, f"auto: {test.sentence()}, so nothing is aligned"
        detected = f"{test.sentence()}; "
    else:
        detected = ""
    factors = [((p.info or {}).get("mean_shrinkage", 0.0), (p.info or {}).get("spread_shrinkage", 0.0))
               for p in parts]
    moved = any(m > 0 or v > 0 for m, v in factors)
    kept = "; ".join(f"{m:.0%} of the mean shift and {v:.0%} of the spread's"
                     + (f" (block {i})" if len(parts) > 1 else "") for i, (m, v) in enumerate(factors))
    if not moved:
        return False, (f"auto: {detected}the target's means and spreads differ from the training data's by no more "
                       "than their sampling noise (James–Stein keeps none of the shift), so nothing is aligned")
    return True, (f"auto: {detected}per-domain standardisation, the shift shrunk by James–Stein toward no shift: it "
                  f"keeps {kept} (the rest is within the target statistics' sampling noise)")


def fit_coral(source: np.ndarray, target: np.ndarray, *, shrink: bool = True) -> Alignment:
    """CORAL mapping the target into the source: A = C_t^(-1/2) C_s^(1/2), means moved too.

    `shrink=False` uses the plain sample covariances (the closed form of the paper without its +I;
    for tests and for targets with many more inputs than dimensions).
    """
    s = _as_matrix(source, "source features", 2)
    t = _as_matrix(target, "target features", MIN_TARGET_INPUTS)
    _check_dims(s, t)
    if shrink:
        cs, shrink_s = shrunk_covariance(s)
        ct, shrink_t = shrunk_covariance(t)
    else:
        cs, ct = np.cov(s, rowvar=False, bias=True), np.cov(t, rowvar=False, bias=True)
        shrink_s = shrink_t = 0.0
    matrix = _matrix_power(ct, -0.5) @ _matrix_power(cs, 0.5)
    matrix[:, _constant(s)] = 0.0  # a dimension constant in the source gets the source's constant
    return Alignment("coral", mean_in=t.mean(axis=0), mean_out=s.mean(axis=0), matrix=matrix,
                     info={"source_inputs": len(s), "target_inputs": len(t),
                           "source_shrinkage": round(shrink_s, 4), "target_shrinkage": round(shrink_t, 4)})


def fit_alignment(source: np.ndarray, target: np.ndarray, method: str = "auto",
                  blocks: list[int] | None = None, *, seed: int = 0) -> Alignment | BlockAlignment | None:
    """The alignment `method` fits (None for `none`; `auto`: James–Stein-shrunk standardisation, with the
    shift test's outcome in its first part's `info` — `auto_outcome` reads whether to apply it). Self-training
    starts from CORAL's alignment; `mcc` from auto's, applied whatever the test says.

    `blocks`: the widths of the feature blocks of a concatenation (`A+B`); each block is aligned on its
    own (the blocks come from different backbones), and CORAL falls back to standardisation on a
    block wider than `MAX_CORAL_DIM`.
    """
    resolved = resolve_method(method)
    if resolved == "none":
        return None
    widths = _block_widths(blocks, int(np.shape(source)[1]))
    parts: list[Alignment] = []
    spreads: list[np.ndarray] = []  # auto's: the source's per-dimension spread, per block
    start = 0
    for width in widths:
        s, t = np.asarray(source)[:, start:start + width], np.asarray(target)[:, start:start + width]
        if resolved in ("auto", "mcc"):  # mcc: the head is then fine-tuned on the aligned target (`adapt.mcc`)
            part, spread = _fit_shrunk_standardize(s, t)
            parts.append(part)
            spreads.append(spread)
        elif resolved != "standardize" and width <= MAX_CORAL_DIM:
            parts.append(fit_coral(s, t))
        else:
            parts.append(fit_standardize(s, t))
        start += width
    if resolved in ("auto", "mcc"):  # one test over all blocks: the question is whether the target differs at all
        from transferkit.adapt.shift_test import detect_shift

        moments = (np.concatenate([p.mean_out for p in parts]), np.concatenate(spreads))
        test = detect_shift(np.asarray(source), np.asarray(target), seed=seed, source_moments=moments)
        parts[0].info = {**(parts[0].info or {}), **test.info()}
    return parts[0] if len(parts) == 1 else BlockAlignment(parts)


def shrunk_map(source: np.ndarray, target: np.ndarray, blocks: list[int] | None = None,
               source_weights: np.ndarray | None = None) -> Alignment | BlockAlignment:
    """`auto`'s James–Stein-shrunk standardisation of `target` to `source` per feature block, the source's
    moments weighted by `source_weights` when given (`adapt.priors`); no shift test."""
    parts: list[Alignment] = []
    start = 0
    for w in _block_widths(blocks, int(np.shape(source)[1])):
        parts.append(fit_shrunk_standardize(source[:, start:start + w], target[:, start:start + w], source_weights))
        start += w
    return parts[0] if len(parts) == 1 else BlockAlignment(parts)


def _block_widths(blocks: list[int] | None, width: int) -> list[int]:
    """The widths of the feature blocks aligned one by one: a concatenation's `blocks` when they make up the
    features, else the whole width as one block."""
    return list(blocks) if blocks and sum(blocks) == width else [width]


@dataclass
class BlockAlignment:
    """One alignment per feature block of a concatenation, side by side."""

    parts: list[Alignment]

    @property
    def method(self) -> str:
        return "+".join(p.method for p in self.parts)

    @property
    def info(self) -> dict[str, float]:
        return {f"block{i}_{k}": v for i, p in enumerate(self.parts) for k, v in (p.info or {}).items()}

    def apply(self, values: np.ndarray) -> np.ndarray:
        return aligned_with(self.module(), values)

    def module(self) -> BlockAlignModule:
        return BlockAlignModule([p.module() for p in self.parts])


class BlockAlignModule(nn.Module):
    """Alignments of consecutive feature blocks (tensors `align.<i>.mean_in`, …)."""

    def __init__(self, parts: list[AlignModule]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)
        self.widths = [p.dim for p in parts]

    @property
    def dim(self) -> int:
        return sum(self.widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(x, self.widths, dim=1)
        return torch.cat([part(c) for part, c in zip(self.parts, chunks, strict=True)], dim=1)


def _check_dims(s: np.ndarray, t: np.ndarray) -> None:
    if s.shape[1] != t.shape[1]:
        raise DataError(f"source features have {s.shape[1]} dimensions, target features {t.shape[1]}: they must "
                        "come from the same backbone")


# -- test-time adaptation --------------------------------------------------------------------------


def batch_standardizer(batch: np.ndarray, source_mean: np.ndarray, source_std: np.ndarray) -> Alignment:
    """Standardise a batch's features with its own statistics into the source's (test-time adaptation).

    Refused (`ConfigError`, with the reason) below `MIN_BATCH_INPUTS` inputs.
    """
    x = np.asarray(batch, np.float64)
    if len(x) < MIN_BATCH_INPUTS:
        raise ConfigError(f"--adapt-batch needs at least {MIN_BATCH_INPUTS} readable inputs to standardise a batch "
                          f"with its own statistics; got {len(x)}. A spread estimated from fewer inputs is off by "
                          "more than 1/sqrt(2n), and a small batch's mean is its classes', not its domain's: give more "
                          "inputs at once, or fit with --adapt-to TARGET")
    x = _as_matrix(x, "batch features", MIN_BATCH_INPUTS)
    mean = np.asarray(source_mean, np.float64)
    if mean.shape[0] != x.shape[1]:
        raise ConfigError(f"the batch's features have {x.shape[1]} dimensions; the model's source statistics "
                          f"{mean.shape[0]}")
    return Alignment("batch", mean_in=x.mean(axis=0), mean_out=mean,
                     scale=np.asarray(source_std, np.float64) / _spread(x), info={"batch_inputs": len(x)})
