"""Choosing without target labels: Deep Embedded Validation (DEV; You, Wang, Long & Jordan, ICML 2019).

In-domain validation cannot see a shift: two models that read the same on DATA's validation split
can differ by many points where the model is used. With TARGET's unlabelled inputs, DEV estimates
the *target* risk from the labelled validation split by importance weighting:

1. **density ratio** — a domain classifier d(x) = P(target | x) is trained on the training split's
   features (source) and TARGET's; each validation input gets the weight
   w(x) = (n_source / n_target) · d(x) / (1 − d(x)), an estimate of p_target(x) / p_source(x).
2. **weighted risk with a control variate** — with ℓᵢ the loss of validation input i (here the 0-1
   error; the log-loss breaks ties) and wᵢ its weight, the importance-weighted risk mean(wℓ) is
   unbiased but its variance grows with the weights'. Since E[w] = 1 is known, w is a control
   variate: η = −Cov(wℓ, w) / Var(w) and

       R_DEV = mean(wℓ) + η · mean(w) − η

   (the paper's Algorithm 2). With w ≡ 1 (no shift) it is the plain validation risk.

The domain classifier (a stated choice): features standardised on both domains, projected on their
first `DEV_COMPONENTS` principal components (a density ratio in 1,280 dimensions from a few hundred
inputs is noise: the classifier separates anything), then a logistic regression whose C is chosen
by 3-fold cross-validated log-loss — the loss that makes its probabilities, hence the weights,
calibrated. d is clipped to [`CLIP`, 1 − `CLIP`] so that no weight is infinite. Each domain is
capped at `MAX_PER_DOMAIN` inputs (a seeded subsample) for the classifier.

The weights of one candidate are computed in its own feature space (the paper's "deep embedded"
features); when several models must be compared on one footing (views or no views, a probe or its
fine-tuned network), they share one set of weights from a common feature space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: principal components the domain classifier sees (fewer when there are fewer inputs)
DEV_COMPONENTS = 32
#: the domain classifier's P(target|x) is kept within [CLIP, 1 - CLIP]
CLIP = 1e-3
#: inputs of each domain the domain classifier is trained on at most (a seeded subsample)
MAX_PER_DOMAIN = 1000
#: fewer inputs than this on either side estimate no density ratio
MIN_DOMAIN_INPUTS = 10
#: the domain classifier's C grid (chosen by 3-fold cross-validated log-loss)
C_GRID = (0.001, 0.01, 0.1, 1.0)


@dataclass
class DevScore:
    """A model's DEV estimate of its target risk (0-1 error) and log-loss, and the weights' spread."""

    risk: float
    log_loss: float
    #: the plain (unweighted) validation error, for comparison
    plain_risk: float
    #: effective sample size of the weights, n_eff = (Σw)² / Σw², out of len(w): small means a few
    #: validation inputs carry the estimate
    effective_n: float

    @property
    def accuracy(self) -> float:
        """1 − R_DEV: the estimated accuracy on the target (can leave [0, 1] when the weights are wild)."""
        return 1.0 - self.risk

    def to_dict(self) -> dict[str, float]:
        return {"dev_accuracy": round(self.accuracy, 4), "dev_log_loss": round(self.log_loss, 4),
                "plain_val_accuracy": round(1.0 - self.plain_risk, 4), "effective_n": round(self.effective_n, 1)}


def importance_weights(source: np.ndarray, target: np.ndarray, at: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """w(x) ≈ p_target(x) / p_source(x) at the rows of `at` (validation features), from a domain
    classifier trained on `source` (the training split's features) against `target`; mean ≈ 1."""
    from transferkit.runtime import threads_limited

    # a PCA and 13 small regressions: on 2 busy cores 2 threads wait on each other (icons-like shapes at load
    # 9.6-10: 8.57 s -> 1.34 s, median of 5 alternating; the same weights)
    with threads_limited(1):
        return _importance_weights(source, target, at, seed=seed)


def _importance_weights(source: np.ndarray, target: np.ndarray, at: np.ndarray, *, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    rng = np.random.default_rng(seed)
    s = np.asarray(source, np.float64)[rng.permutation(len(source))[:MAX_PER_DOMAIN]]
    t = np.asarray(target, np.float64)[rng.permutation(len(target))[:MAX_PER_DOMAIN]]
    x = np.concatenate([s, t])
    mean, std = x.mean(0), x.std(0)
    std[std < 1e-12] = 1.0
    components = int(min(DEV_COMPONENTS, len(x) - 1, x.shape[1]))
    pca = PCA(n_components=components, random_state=seed).fit((x - mean) / std)
    z = pca.transform((x - mean) / std)
    domain = np.concatenate([np.zeros(len(s), int), np.ones(len(t), int)])
    folds = int(min(3, len(s), len(t)))
    best_c = C_GRID[-1]
    if folds >= 2:
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        scores = {c: float(np.mean(cross_val_score(LogisticRegression(C=c, max_iter=2000), z, domain, cv=cv,
                                                   scoring="neg_log_loss"))) for c in C_GRID}
        best_c = max(C_GRID, key=lambda c: (scores[c], -c))
    model = LogisticRegression(C=best_c, max_iter=2000).fit(z, domain)
    d = model.predict_proba(pca.transform((np.asarray(at, np.float64) - mean) / std))[:, 1]
    d = np.clip(d, CLIP, 1.0 - CLIP)
    return (len(s) / len(t)) * d / (1.0 - d)


def dev_risk(losses: np.ndarray, weights: np.ndarray) -> float:
    """R_DEV = mean(wℓ) + η·mean(w) − η, η = −Cov(wℓ, w)/Var(w) (You et al. 2019, Algorithm 2)."""
    loss, w = np.asarray(losses, np.float64), np.asarray(weights, np.float64)
    weighted = w * loss
    variance = float(np.var(w, ddof=1)) if len(w) > 1 else 0.0
    if variance <= 1e-12:
        return float(np.mean(weighted))
    eta = -float(np.cov(weighted, w, ddof=1)[0, 1]) / variance
    return float(np.mean(weighted) + eta * np.mean(w) - eta)


def dev_score(proba: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> DevScore:
    """DEV of a model's validation probabilities `proba` [n, k] against labels `truth` [n]."""
    p = np.asarray(proba, np.float64)
    y = np.asarray(truth, np.int64)
    error = (p.argmax(1) != y).astype(np.float64)
    nll = -np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))
    w = np.asarray(weights, np.float64)
    effective = float(w.sum() ** 2 / max((w ** 2).sum(), 1e-300))
    return DevScore(risk=dev_risk(error, w), log_loss=dev_risk(nll, w), plain_risk=float(error.mean()),
                    effective_n=effective)


def heldout_proba(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, n_classes: int, *, c: float,
                  seed: int = 0) -> np.ndarray:
    """Validation probabilities of a linear probe (standardised features, logistic regression at the C
    validation chose) fitted on the training rows only — the probe's own head was refitted on train +
    validation, so its validation predictions cannot be scored."""
    from sklearn.linear_model import LogisticRegression

    mean, std = train_x.mean(0), train_x.std(0)
    std[std < 1e-6] = 1.0
    model = LogisticRegression(C=c, max_iter=1000, random_state=seed).fit((train_x - mean) / std, train_y)
    proba = np.zeros((len(val_x), n_classes))
    proba[:, model.classes_] = model.predict_proba((val_x - mean) / std)
    return proba


def compare_by_dev(train: np.ndarray, train_y: np.ndarray, val: np.ndarray, val_y: np.ndarray, target: np.ndarray,
                   probas: dict[str, np.ndarray], *, seed: int = 0) -> dict[str, DevScore]:
    """DEV of several models' validation probabilities on one set of importance weights, estimated in
    one common feature space (`train`, `val`, `target`: e.g. a frozen backbone's features), so that the
    models — a probe and the network fine-tuned from it — are weighed on one footing."""
    weights = importance_weights(train, target, val, seed=seed)
    return {name: dev_score(p, val_y, weights) for name, p in probas.items()}
