"""Does the target differ at all? A two-sample test, decided before `auto` aligns anything.

Aligning a target that is not shifted can only cost accuracy: its statistics differ from the
source's by sampling noise alone, and standardising with noise moves every feature (with 97 target
inputs in 1,280 dimensions a no-shift target read 2.4 standard errors of shift, and even
James–Stein-shrunk standardisation lost 0.7 to 4.1 points on our no-shift controls). So `auto` first
asks whether there is a shift, by the rule of Rabanser, Günnemann & Lipton, "Failing Loudly: An
Empirical Study of Methods for Detecting Dataset Shift" (NeurIPS 2019): reduce the dimension, then
run a univariate two-sample Kolmogorov–Smirnov test on each reduced component and combine them by
Bonferroni — a shift is detected when the smallest p-value is below α / K.

Here, stated once:
- the features are standardised with the source's per-dimension mean and spread (a dimension
  constant in the source is dropped);
- wider than `projection.REDUCED_DIM` (256): the seeded very sparse random projection of the
  shift diagnostic first (the paper's SRP), so the cost does not grow with the width;
- then PCA fitted on the source rows (the paper's PCA reduction; at most `MAX_SOURCE_ROWS`, seeded),
  K = `COMPONENTS` = 32 components, the paper's reduced dimension;
- KS on each component between all source rows and all target rows; α = `ALPHA` = 0.05.

Under no shift the test wrongly detects one at most 5% of the time (Bonferroni is conservative);
then `auto` aligns nothing and the model is exactly the plain probe. When a shift is detected,
`auto` aligns (James–Stein-shrunk standardisation, `adapt.align`). A shift the test cannot see
with the target given (a few inputs, or one outside the leading components) is left alone: the
summary says which and why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transferkit.errors import DataError

#: the test's level: under no shift, a shift is wrongly detected at most this often
ALPHA = 0.05
#: PCA components tested (Rabanser et al. 2019 reduce to K = 32)
COMPONENTS = 32
#: the PCA is fitted on at most this many source rows (a seeded subsample)
MAX_SOURCE_ROWS = 2000


@dataclass(frozen=True)
class ShiftTest:
    """The outcome of `detect_shift`: the smallest per-component p-value and the Bonferroni threshold."""

    detected: bool
    p_value: float  # the smallest KS p-value over the components
    threshold: float  # α / K
    components: int
    statistic: float  # the KS statistic of that component

    def sentence(self) -> str:
        verdict = "a shift is detected" if self.detected else "no shift is detected"
        return (f"{verdict} (two-sample Kolmogorov–Smirnov on {self.components} principal components of the "
                f"features, Bonferroni at α = {ALPHA}: smallest p = {self.p_value:.2g}, threshold "
                f"{self.threshold:.2g}; Rabanser et al., NeurIPS 2019)")

    def info(self) -> dict[str, float]:
        return {"shift_detected": float(self.detected), "shift_p_value": float(self.p_value),
                "shift_threshold": float(self.threshold), "shift_components": float(self.components),
                "shift_statistic": round(self.statistic, 4)}


def detect_shift(source: np.ndarray, target: np.ndarray, *, alpha: float = ALPHA, components: int = COMPONENTS,
                 seed: int = 0, source_moments: tuple[np.ndarray, np.ndarray] | None = None) -> ShiftTest:
    """Whether `target`'s features [m, d] differ in distribution from `source`'s [n, d] (module docstring).

    `source_moments`: the source's per-dimension mean and standard deviation (float64, as `source.mean(axis=0)`
    and `source.std(axis=0)` give them) when the caller has computed them already — auto's rule has; on
    man pages' 890 x 16,768 features computing them again was a tenth of the rule's time."""
    from scipy.stats import ks_2samp
    from sklearn.decomposition import PCA

    from transferkit.adapt.projection import inverse_spread, random_projection, standardize_project
    from transferkit.runtime import threads_limited

    s, t = np.asarray(source), np.asarray(target)
    if s.ndim != 2 or t.ndim != 2 or s.shape[1] != t.shape[1]:
        raise DataError(f"the shift test needs source and target features of one width; got {s.shape} and {t.shape}")
    if len(s) < 2 or len(t) < 2:
        raise DataError(f"the shift test needs at least 2 inputs in each domain; source has {len(s)}, target {len(t)}")
    if source_moments is None:
        mean, std = s.mean(axis=0, dtype=np.float64), s.std(axis=0, dtype=np.float64)
    else:
        mean, std = (np.asarray(m, np.float64) for m in source_moments)
        if mean.shape != (s.shape[1],) or std.shape != (s.shape[1],):
            raise DataError(f"the shift test: the source's moments have shapes {mean.shape} and {std.shape}; its "
                            f"features have {s.shape[1]} dimensions")
    scale = inverse_spread(std)
    if not scale.any():
        raise DataError("the shift test: every source feature is constant")
    zs, zt = standardize_project([s, t], mean, scale, random_projection(s.shape[1], seed=seed))
    rng = np.random.default_rng(seed)
    fit_rows = zs if len(zs) <= MAX_SOURCE_ROWS else zs[np.sort(rng.choice(len(zs), MAX_SOURCE_ROWS, replace=False))]
    k = max(1, min(components, zs.shape[1], len(fit_rows) - 1))
    pca = PCA(n_components=k, svd_solver="full" if zs.shape[1] <= 512 else "randomized", random_state=seed)
    with threads_limited(1):
        pca.fit(fit_rows)
        ps, pt = pca.transform(zs), pca.transform(zt)
    results = [ks_2samp(ps[:, j], pt[:, j]) for j in range(k)]
    best = min(range(k), key=lambda j: float(results[j].pvalue))
    p_value = float(results[best].pvalue)
    threshold = alpha / k
    return ShiftTest(detected=p_value < threshold, p_value=p_value, threshold=threshold, components=k,
                     statistic=float(results[best].statistic))
