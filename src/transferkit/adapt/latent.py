"""Latent target domains: a target made of several domains is aligned one discovered domain at a time.

A target is often not one domain but several — recordings of two new speakers, photos from three new
cameras — and each has its own shift. One alignment for the whole target removes their average shift
and leaves each domain's own offset in place. Per-speaker normalisation is the classic cure in speech
(cepstral mean and variance normalisation per speaker), and domain-specific normalisation the one in
multi-source adaptation (Chang et al., "Domain-Specific Batch Normalization", CVPR 2019); when the
domains are not labelled they are discovered by clustering the target (Hoffman et al., "Discovering
Latent Domains for Multisource Domain Adaptation", ECCV 2012; Gong, Grauman & Sha, NIPS 2013).

Here, stated once:
- the target's features are standardised with its own per-dimension statistics (wider than
  `projection.REDUCED_DIM`: the seeded very sparse random projection of the shift test first), and
  reduced by PCA to `COMPONENTS` (32, as the shift test) fitted on the target;
- k-means (k-means++, `N_INIT` starts, seeded) for k = 2 … `MAX_DOMAINS`, every cluster holding at least
  `MIN_TARGET_INPUTS` inputs; k is the one with the largest mean silhouette (Rousseeuw, J. Comput. Appl.
  Math. 1987), the standard rule for the number of clusters (on a seeded sample of `SILHOUETTE_ROWS`
  inputs when there are more: it costs the square of their number);
- each cluster is aligned to the source by `auto`'s James–Stein-shrunk standardisation, on its own;
- an input is assigned to its nearest cluster centre in that reduced space — at prediction time, in the
  bundle and in the exported graph alike (`LatentAlignModule`: one projection, an argmin, a gather).

Whether the latent domains are kept is not decided here: a target that is one domain also splits into
clusters (by class, or by nothing), and aligning those moves classes into each other. The probe keeps
whichever of the two alignments — the whole target's or the latent domains' — makes its head's
predictions on the target carry the most information (`information_maximization`: the entropy of the
mean prediction minus the mean entropy of the predictions; Krause, Perona & Gomes, NIPS 2010, SHOT's
objective, and among the better validators of unsupervised adaptation in Musgrave, Belongie & Lim,
"Benchmarking Validation Methods for Unsupervised Domain Adaptation", 2021). Well-aligned domains give
confident, class-balanced predictions; classes moved into each other give neither. The information of
the two is read on the same target inputs, and a gain is an estimate: the latent domains are kept only
when it is significant (`information_gain`: a paired percentile bootstrap over the target's inputs,
Efron & Tibshirani 1993, one-sided at α = 0.05), so a tie — a one-domain target split into clusters that
change nothing — keeps the one map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from transferkit.adapt.align import MIN_TARGET_INPUTS, Alignment, BlockAlignment, aligned_with, shrunk_map
from transferkit.adapt.projection import inverse_spread, random_projection

#: PCA components the target is clustered in (the shift test's K)
COMPONENTS = 32
#: the most latent domains tried (k = 2 … MAX_DOMAINS)
MAX_DOMAINS = 6
#: k-means restarts (scikit-learn's classic default)
N_INIT = 10
#: the silhouette (quadratic in the inputs) is computed on at most this many of them (a seeded sample)
SILHOUETTE_ROWS = 2000
#: bootstrap resamples of the information gain, and its one-sided level (`information_gain`)
RESAMPLES = 1000
ALPHA = 0.05


@dataclass
class LatentAlignment:
    """Per-cluster diagonal maps x -> x * scale[c] + shift[c], c the nearest of `centroids` to
    x @ project - offset."""

    project: np.ndarray  # [d, p]
    offset: np.ndarray  # [p]
    centroids: np.ndarray  # [k, p]
    scale: np.ndarray  # [k, d]
    shift: np.ndarray  # [k, d]
    info: dict[str, float]

    method = "latent domains"

    @property
    def dim(self) -> int:
        return int(self.scale.shape[1])

    def apply(self, values: np.ndarray) -> np.ndarray:
        return aligned_with(self.module(), values)

    def module(self) -> LatentAlignModule:
        return LatentAlignModule(*(torch.from_numpy(np.asarray(a, np.float32)) for a in
                                   (self.project, self.offset, self.centroids, self.scale, self.shift)))


class LatentAlignModule(nn.Module):
    """The latent-domain alignment as a torch module (a bundle's `align.project`, `align.offset`,
    `align.centroids`, `align.scale`, `align.shift`; a node of the exported graph)."""

    project: torch.Tensor
    offset: torch.Tensor
    centroids: torch.Tensor
    scale: torch.Tensor
    shift: torch.Tensor

    KEYS = ("project", "offset", "centroids", "scale", "shift")

    def __init__(self, project: torch.Tensor, offset: torch.Tensor, centroids: torch.Tensor, scale: torch.Tensor,
                 shift: torch.Tensor) -> None:
        super().__init__()
        d, p = project.shape
        k = centroids.shape[0]
        if offset.shape != (p,) or centroids.shape != (k, p) or scale.shape != (k, d) or shift.shape != (k, d):
            raise ValueError(f"inconsistent latent alignment shapes: project {tuple(project.shape)}, offset "
                             f"{tuple(offset.shape)}, centroids {tuple(centroids.shape)}, scale {tuple(scale.shape)}, "
                             f"shift {tuple(shift.shape)}")
        for name, value in zip(self.KEYS, (project, offset, centroids, scale, shift), strict=True):
            self.register_buffer(name, value.float())

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str = "align.") -> LatentAlignModule | None:
        if not all(prefix + k in tensors for k in cls.KEYS):
            return None
        return cls(*(tensors[prefix + k] for k in cls.KEYS))

    @property
    def dim(self) -> int:
        return int(self.scale.shape[1])

    def domains(self, x: torch.Tensor) -> torch.Tensor:
        """The latent domain of each row: the nearest cluster centre in the reduced space."""
        z = x.float() @ self.project - self.offset
        distance = (z * z).sum(1, keepdim=True) - 2 * z @ self.centroids.T + (self.centroids**2).sum(1)
        return distance.argmin(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.domains(x)
        return x.float() * self.scale[c] + self.shift[c]


def _diagonal(alignment: Alignment | BlockAlignment) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) of a diagonal alignment, x -> x * scale + shift."""
    parts = alignment.parts if isinstance(alignment, BlockAlignment) else [alignment]
    scale = np.concatenate([np.asarray(p.scale, np.float64) for p in parts if p.scale is not None])
    mean_in = np.concatenate([p.mean_in for p in parts])
    mean_out = np.concatenate([p.mean_out for p in parts])
    return scale, mean_out - mean_in * scale


def fit_latent_alignment(source: np.ndarray, target: np.ndarray, blocks: list[int] | None = None, *,
                         seed: int = 0) -> LatentAlignment | None:
    """The latent-domain alignment of `target` to `source` (module docstring), or None when the target is too
    small to hold two clusters of `MIN_TARGET_INPUTS` inputs each, or no k gives clusters that large."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score

    from transferkit.runtime import threads_limited

    t = np.asarray(target, np.float64)
    s = np.asarray(source, np.float64)
    n, width = t.shape
    if n < 2 * MIN_TARGET_INPUTS:
        return None
    mean = t.mean(axis=0)
    inverse = inverse_spread(t.std(axis=0))
    projection = random_projection(width, seed=seed)
    # the target standardised, projected and reduced, as one linear map [width, p] and an offset
    if projection is None:
        reduced_in = (t - mean) * inverse
    else:
        from scipy import sparse

        folded = np.asarray((sparse.diags_array(inverse) @ projection).toarray())
        reduced_in = (t - mean) @ folded
    with threads_limited(1):  # small problems (see `runtime.threads_limited`)
        pca = PCA(min(COMPONENTS, n - 1, reduced_in.shape[1]), random_state=seed).fit(reduced_in)
        project = inverse[:, None] * pca.components_.T if projection is None else folded @ pca.components_.T
        offset = ((mean * inverse if projection is None else mean @ folded) + pca.mean_) @ pca.components_.T
        z = t @ project - offset
        best: tuple[float, int, np.ndarray, np.ndarray] | None = None
        tried: dict[str, float] = {}
        for k in range(2, MAX_DOMAINS + 1):
            if n < k * MIN_TARGET_INPUTS:
                break
            km = KMeans(k, n_init=N_INIT, random_state=seed).fit(z)
            if np.bincount(km.labels_, minlength=k).min() < MIN_TARGET_INPUTS:
                continue
            score = float(silhouette_score(z, km.labels_, sample_size=min(n, SILHOUETTE_ROWS), random_state=seed))
            tried[f"silhouette_k{k}"] = round(score, 4)
            if best is None or score > best[0]:
                best = (score, k, km.cluster_centers_, km.labels_)
    if best is None:
        return None
    _, k, centroids, labels = best
    maps = [_diagonal(shrunk_map(s, t[labels == c], blocks)) for c in range(k)]
    return LatentAlignment(project=project, offset=offset, centroids=centroids,
                           scale=np.stack([m[0] for m in maps]), shift=np.stack([m[1] for m in maps]),
                           info={"domains": k, **tried,
                                 **{f"domain{c}_inputs": int((labels == c).sum()) for c in range(k)}})


def information_maximization(proba: np.ndarray) -> float:
    """H(mean prediction) − mean H(prediction), in nats: high when the predictions are confident and spread
    over the classes (Krause, Perona & Gomes 2010)."""
    p = np.clip(np.asarray(proba, np.float64), 1e-12, 1.0)
    marginal = p.mean(axis=0)
    return float(-(marginal * np.log(marginal)).sum() + (p * np.log(p)).sum(axis=1).mean())


def information_gain(latent: np.ndarray, whole: np.ndarray, *, seed: int = 0) -> tuple[float, float]:
    """The information of the predictions `latent` over that of `whole` (both [n, classes], on the same n
    inputs), and the lower bound of its one-sided (1 − `ALPHA`) percentile bootstrap interval: `RESAMPLES`
    resamples of the n inputs with replacement (seeded), each scoring both on the same rows. A lower bound
    above zero is a gain the inputs' sampling does not explain."""
    p = np.clip(np.asarray(latent, np.float64), 1e-12, 1.0)
    q = np.clip(np.asarray(whole, np.float64), 1e-12, 1.0)
    n = len(p)
    rng = np.random.default_rng(seed)
    neg_entropy_p, neg_entropy_q = (p * np.log(p)).sum(axis=1), (q * np.log(q)).sum(axis=1)

    def information(rows: np.ndarray, neg_entropy: np.ndarray, weights: np.ndarray) -> np.ndarray:
        marginal = np.clip(weights @ rows, 1e-12, None)
        return -(marginal * np.log(marginal)).sum(axis=1) + weights @ neg_entropy

    # a resample is a count per input, its means counts @ rows / n: a few resamples per matrix product,
    # ~2 M counts at a time whatever n is
    resampled = []
    for start in range(0, RESAMPLES, max(1, min(RESAMPLES, 2**21 // n))):
        size = min(RESAMPLES - start, max(1, 2**21 // n))
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=size) / n
        resampled.append(information(p, neg_entropy_p, weights) - information(q, neg_entropy_q, weights))
    gain = information_maximization(p) - information_maximization(q)
    return gain, float(np.quantile(np.concatenate(resampled), ALPHA))
