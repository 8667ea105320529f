"""How far is the target? A shift diagnostic between DATA's features and TARGET's.

The proxy A-distance (Ben-David, Blitzer, Crammer & Pereira, NIPS 2006; Ben-David et al., Machine
Learning 2010): train a classifier to tell the two domains apart; with its held-out error ε,

    d_A = 2 (1 − 2ε)

0 when the domains cannot be told apart (ε = ½), 2 when they always can. Here the domain classifier
is a logistic regression on standardised features, its error the cross-validated balanced error
(stratified k-fold, seeded), so unequal domain sizes do not move it; each domain is capped at
`max_per_domain` inputs (a seeded subsample).

Per class of DATA: each target input is assigned to its nearest class mean of DATA (standardised
features); for each class, the domain classifier's held-out balanced accuracy on that class's DATA
inputs and the target inputs assigned to it (near ½: the target looks like this class; near 1: it
does not), and how far the assigned target inputs lie from the class mean relative to the class's
own inputs. The classes with the highest domain accuracy are where the target looks worst.

Verdict rule (balanced domain accuracy): ≤ 0.60 little, ≤ 0.80 moderately, above strongly.

**The reduction** (what keeps it cheap on wide features). The domain classifier, the per-class rows
and the map all read each domain through one fixed reduction: the (capped) rows of both domains are
standardised with the pooled mean and spread of both domains' rows, then, when there are more than
`REDUCED_DIM` dimensions, multiplied by a seeded *very sparse* random projection to `REDUCED_DIM`
dimensions (Li, Hastie & Church, KDD 2006; Johnson–Lindenstrauss: distances, hence linear
separability, are kept up to a small distortion). The projection depends only on the seed and the
width; the aligned rows are standardised with their own pooled statistics and projected by the same
matrix. On hashed n-grams (16,768-d) the classifier on 1,000 + 1,000 full-width rows
took 407 s beside a 216 s fit; on the 256-d projection it costs one matrix product and a small
logistic regression.

`map_coordinates` / `draw_map` make the 2-D map: PCA of the reduced pooled features (fitted on both
domains), coloured by domain and, for DATA, by class; before and after alignment when aligned
features are given. `shift_record` is what a fit with `--adapt-to` stores (numbers, verdict, map
points), read back by the fit summary and the report.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from transferkit.adapt.projection import random_projection, reduce_rows
from transferkit.errors import ConfigError, DataError
from transferkit.jsontypes import JSONObject

#: balanced domain accuracy at or below which the domains are said to differ little, moderately
LITTLE, MODERATE = 0.60, 0.80
#: each domain's inputs are capped at this many (a seeded subsample) for the domain classifier
MAX_PER_DOMAIN = 2000
#: folds of the domain classifier's cross-validation (fewer when a domain has fewer inputs)
FOLDS = 5
#: the domain classifier's inverse regularisation (logistic regression on standardised features)
DOMAIN_C = 0.1


@dataclass
class ClassShift:
    """One class of DATA: its inputs, the target inputs nearest to it, and how separable they are."""

    label: str
    n_source: int
    n_target: int  # target inputs whose nearest class mean is this class
    domain_accuracy: float | None  # held-out balanced accuracy on this class's inputs of both domains
    distance_ratio: float | None  # mean distance to the class mean: target's / the class's own
    domain_accuracy_aligned: float | None = None


@dataclass
class ShiftDiagnostic:
    """A domain classifier's verdict on DATA vs TARGET, before (and after) alignment."""

    n_source: int
    n_target: int
    domain_accuracy: float
    proxy_a_distance: float
    domain_accuracy_aligned: float | None = None
    proxy_a_distance_aligned: float | None = None
    alignment: str | None = None  # the alignment's name, e.g. "coral"
    per_class: list[ClassShift] = field(default_factory=list)
    folds: int = FOLDS
    seed: int = 0

    @property
    def level(self) -> str:
        """little | moderately | strongly (by the balanced domain accuracy before alignment)."""
        return shift_level(self.domain_accuracy)

    def worst_classes(self, k: int = 3) -> list[ClassShift]:
        """Up to `k` classes where the domains are most separable (above the 'little' level)."""
        rated = [c for c in self.per_class if c.domain_accuracy is not None and c.domain_accuracy > LITTLE]
        return sorted(rated, key=lambda c: -(c.domain_accuracy or 0.0))[:k]

    def verdict(self) -> str:
        """One sentence a user reads before labelling anything."""
        text = (f"the target differs {self.level} from the training data (a domain classifier tells them "
                f"apart {self.domain_accuracy:.0%} of the time; proxy A-distance {self.proxy_a_distance:.2f})")
        if self.domain_accuracy_aligned is not None:
            text += (f"; after {self.alignment or 'alignment'}: {self.domain_accuracy_aligned:.0%} "
                     f"({self.proxy_a_distance_aligned:.2f})")
        worst = self.worst_classes()
        if worst:
            text += "; worst for classes " + ", ".join(f"{c.label} ({c.domain_accuracy:.0%})" for c in worst)
        elif self.per_class and self.level != "little":
            text += "; no class stands out"
        return text

    def to_dict(self) -> JSONObject:
        out = asdict(self)
        out["level"] = self.level
        out["verdict"] = self.verdict()
        return out

    @classmethod
    def from_dict(cls, values: JSONObject) -> ShiftDiagnostic:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        known["per_class"] = [ClassShift(**c) for c in values.get("per_class", [])]
        return cls(**known)


def shift_level(accuracy: float) -> str:
    return "little" if accuracy <= LITTLE else "moderately" if accuracy <= MODERATE else "strongly"


def proxy_a_distance(accuracy: float) -> float:
    """d_A = 2(1 − 2ε) from the domain classifier's held-out (balanced) accuracy, floored at 0."""
    return float(max(0.0, 2.0 * (1.0 - 2.0 * (1.0 - accuracy))))


def diagnose_shift(
    source: np.ndarray,
    target: np.ndarray,
    labels: Sequence[object] | None = None,
    *,
    source_aligned: np.ndarray | None = None,
    target_aligned: np.ndarray | None = None,
    alignment: str | None = None,
    seed: int = 0,
    max_per_domain: int = MAX_PER_DOMAIN,
) -> ShiftDiagnostic:
    """The shift diagnostic of DATA's features `source` (with class `labels`, optional) against TARGET's
    `target` features; with `source_aligned`/`target_aligned` (the same rows after an alignment named
    `alignment`), the same numbers after it."""
    source, target = _check(source, "DATA"), _check(target, "TARGET")
    if source.shape[1] != target.shape[1]:
        raise ConfigError(f"DATA's features have {source.shape[1]} dimensions and TARGET's {target.shape[1]}: "
                          "they must come from the same backbone")
    if labels is not None and len(labels) != len(source):
        raise ConfigError(f"{len(labels)} labels for {len(source)} DATA feature rows")
    if (source_aligned is None) != (target_aligned is None):
        raise ConfigError("give both source_aligned and target_aligned, or neither")
    rng = np.random.default_rng(seed)
    keep_s = _cap(len(source), max_per_domain, rng)
    keep_t = _cap(len(target), max_per_domain, rng)
    folds = min(FOLDS, len(keep_s), len(keep_t))
    if folds < 2:
        raise DataError(f"the shift diagnostic needs at least 2 inputs in each domain; DATA has {len(source)}, "
                        f"TARGET {len(target)}")
    y_lab = None if labels is None else np.asarray([str(v) for v in labels], dtype=object)[keep_s]
    projection = random_projection(source.shape[1], seed=seed)
    domain = np.concatenate([np.zeros(len(keep_s), int), np.ones(len(keep_t), int)])

    def measure(s: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        z = reduce_rows([(s, keep_s), (t, keep_t)], projection)
        accuracy, correct = domain_classifier_accuracy(z, domain, folds=folds, seed=seed)
        return accuracy, correct, z

    accuracy, correct, z = measure(source, target)
    report = ShiftDiagnostic(n_source=len(source), n_target=len(target), domain_accuracy=accuracy,
                             proxy_a_distance=proxy_a_distance(accuracy), folds=folds, seed=seed)
    if y_lab is not None:
        report.per_class = _per_class(z[: len(keep_s)], z[len(keep_s):], y_lab, correct)
    if source_aligned is not None and target_aligned is not None:
        sa, ta = _check(source_aligned, "aligned DATA"), _check(target_aligned, "aligned TARGET")
        if sa.shape != source.shape or ta.shape != target.shape:
            raise ConfigError("the aligned features must have the shapes of the features before alignment")
        acc_aligned, correct_aligned, za = measure(sa, ta)
        report.domain_accuracy_aligned = acc_aligned
        report.proxy_a_distance_aligned = proxy_a_distance(acc_aligned)
        report.alignment = alignment
        if y_lab is not None:
            after = _per_class(za[: len(keep_s)], za[len(keep_s):], y_lab, correct_aligned)
            for row, row_after in zip(report.per_class, after, strict=True):
                row.domain_accuracy_aligned = row_after.domain_accuracy
    return report


def diagnose_with_alignment(source: np.ndarray, target: np.ndarray, labels: Sequence[object] | None = None, *,
                            method: str = "auto", seed: int = 0) -> tuple[ShiftDiagnostic, np.ndarray | None]:
    """`diagnose_shift` before and after the alignment `method` (`adapt.align`: the target's features
    mapped into the source's), and the aligned target features (None for method `none`, and for `auto`
    when it aligns nothing: its shift test saw no shift)."""
    from transferkit.adapt.align import auto_outcome, fit_alignment

    alignment = fit_alignment(np.asarray(source, np.float32), np.asarray(target, np.float32),
                              "coral" if method == "self-training" else method, seed=seed)
    if alignment is not None and method == "auto" and not auto_outcome(alignment)[0]:
        alignment = None
    if alignment is None:
        return diagnose_shift(source, target, labels, seed=seed), None
    aligned = alignment.apply(target)
    name = alignment.method
    return diagnose_shift(source, target, labels, source_aligned=source, target_aligned=aligned, alignment=name,
                          seed=seed), aligned


def domain_classifier_accuracy(x: np.ndarray, domain: np.ndarray, *, folds: int = FOLDS,
                               seed: int = 0) -> tuple[float, np.ndarray]:
    """Held-out balanced accuracy of a logistic-regression domain classifier (stratified k-fold), and
    per row whether its held-out prediction was right."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=DOMAIN_C, class_weight="balanced", max_iter=2000))
    from transferkit.runtime import threads_limited

    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with threads_limited(1):
        predicted = cross_val_predict(model, x, domain, cv=cv)
    return float(balanced_accuracy_score(domain, predicted)), predicted == domain


def _per_class(source: np.ndarray, target: np.ndarray, labels: np.ndarray, correct: np.ndarray) -> list[ClassShift]:
    """Per class: the target inputs nearest its mean (standardised by DATA), the domain classifier's
    held-out balanced accuracy on both domains' inputs of it, and the distance ratio."""
    mean, std = source.mean(0), source.std(0) + 1e-6
    zs, zt = (source - mean) / std, (target - mean) / std
    classes = sorted(set(labels.tolist()))
    centroids = np.stack([zs[labels == c].mean(0) for c in classes])
    dist_t = np.sqrt(((zt[:, None, :] - centroids[None]) ** 2).sum(-1))  # [n_target, k]
    nearest = dist_t.argmin(1)
    right_s, right_t = correct[: len(source)], correct[len(source):]
    rows = []
    for i, c in enumerate(classes):
        in_s, in_t = labels == c, nearest == i
        own = np.sqrt(((zs[in_s] - centroids[i]) ** 2).sum(-1)).mean()
        accuracy = None
        ratio = None
        if in_t.any():
            accuracy = float((right_s[in_s].mean() + right_t[in_t].mean()) / 2)
            ratio = float(dist_t[in_t, i].mean() / max(own, 1e-9))
        else:  # no target input looks like this class: the classifier's accuracy on its DATA inputs
            accuracy = float(right_s[in_s].mean())
        rows.append(ClassShift(label=str(c), n_source=int(in_s.sum()), n_target=int(in_t.sum()),
                               domain_accuracy=accuracy, distance_ratio=ratio))
    return rows


def map_coordinates(
    source: np.ndarray,
    target: np.ndarray,
    labels: Sequence[object] | None = None,
    *,
    source_aligned: np.ndarray | None = None,
    target_aligned: np.ndarray | None = None,
    alignment: str | None = None,
    seed: int = 0,
    max_points: int = 500,
) -> JSONObject:
    """The 2-D map's points (JSON-able, so a bundle can keep them and its report draw them): a PCA of
    the reduction (see the module docstring) of both domains' pooled features, before and (when given)
    after alignment; at most `max_points` of each domain (seeded), rounded to 3 decimals."""
    from sklearn.decomposition import PCA

    from transferkit.runtime import threads_limited

    source, target = _check(source, "DATA"), _check(target, "TARGET")
    rng = np.random.default_rng(seed)
    keep_s, keep_t = _cap(len(source), max_points, rng), _cap(len(target), max_points, rng)
    panels: list[tuple[str, np.ndarray, np.ndarray]] = [("before alignment", source, target)]
    if source_aligned is not None and target_aligned is not None:
        panels.append((f"after {alignment or 'alignment'}", source_aligned, target_aligned))
    out: JSONObject = {"n_source": len(source), "n_target": len(target), "method": "pca", "panels": []}
    if labels is not None:
        out["labels"] = [str(v) for v in np.asarray(list(labels), dtype=object)[keep_s]]
    projection = random_projection(source.shape[1], seed=seed)
    for name, s, t in panels:
        pooled = reduce_rows([(s, keep_s), (t, keep_t)], projection)
        with threads_limited(1):
            xy = PCA(n_components=2, random_state=seed).fit_transform(pooled)
        out["panels"].append({"name": name, "source": np.round(xy[: len(keep_s)], 3).tolist(),
                              "target": np.round(xy[len(keep_s):], 3).tolist()})
    return out


def draw_map(coordinates: JSONObject, *, title: str | None = None, dpi: int = 100) -> bytes:
    """PNG bytes of `map_coordinates`' points: by domain, and DATA by class (target in grey), a row
    of panels before and after alignment."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = coordinates["panels"]
    lab = np.asarray(coordinates["labels"], dtype=object) if coordinates.get("labels") is not None else None
    classes = sorted(set(lab.tolist())) if lab is not None else []
    cmap = colormaps["tab10" if len(classes) <= 10 else "tab20"]
    cols = 2 if lab is not None else 1
    fig = Figure(figsize=(4.6 * cols, 4.0 * len(panels)), dpi=dpi, layout="constrained")
    for r, panel in enumerate(panels):
        ps = np.asarray(panel["source"], float).reshape(-1, 2)
        pt = np.asarray(panel["target"], float).reshape(-1, 2)
        ax = fig.add_subplot(len(panels), cols, r * cols + 1)
        ax.scatter(ps[:, 0], ps[:, 1], s=6, alpha=0.6, color="tab:blue", label=f"DATA ({coordinates['n_source']})")
        ax.scatter(pt[:, 0], pt[:, 1], s=6, alpha=0.6, color="tab:orange",
                   label=f"TARGET ({coordinates['n_target']})")
        ax.set_title(f"by domain, {panel['name']}", fontsize=9)
        ax.legend(fontsize=7, markerscale=2, loc="best")
        ax.set_xticks([])
        ax.set_yticks([])
        if lab is not None:
            ax = fig.add_subplot(len(panels), cols, r * cols + 2)
            ax.scatter(pt[:, 0], pt[:, 1], s=5, alpha=0.35, color="0.75", label="TARGET")
            for i, c in enumerate(classes):
                m = lab == c
                ax.scatter(ps[m, 0], ps[m, 1], s=6, alpha=0.8, color=cmap(i % cmap.N), label=c[:18])
            ax.set_title(f"DATA by class, {panel['name']}", fontsize=9)
            if len(classes) <= 12:
                ax.legend(fontsize=6, markerscale=2, loc="best")
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def shift_map(source: np.ndarray, target: np.ndarray, labels: Sequence[object] | None = None, *,
              source_aligned: np.ndarray | None = None, target_aligned: np.ndarray | None = None,
              alignment: str | None = None, seed: int = 0, max_points: int = 1000, title: str | None = None) -> bytes:
    """PNG bytes of the 2-D map (`map_coordinates`, then `draw_map`)."""
    coords = map_coordinates(source, target, labels, source_aligned=source_aligned, target_aligned=target_aligned,
                             alignment=alignment, seed=seed, max_points=max_points)
    return draw_map(coords, title=title)


def shift_record(source: np.ndarray, target: np.ndarray, labels: Sequence[object] | None, *,
                 target_aligned: np.ndarray | None = None, alignment: str | None = None, seed: int = 0,
                 max_per_domain: int = 1000) -> JSONObject:
    """What a fit with `--adapt-to` keeps (the bundle's `adaptation.shift`, the fit summary, the report):
    the diagnostic's numbers and verdict, and the map's points. `target_aligned`: the target's
    features after the alignment the model carries (the source's are unchanged by it). Each domain is
    capped at `max_per_domain` inputs (fewer than the command's: it runs inside every adapted fit)."""
    source_aligned = source if target_aligned is not None else None
    diagnostic = diagnose_shift(source, target, labels, source_aligned=source_aligned, target_aligned=target_aligned,
                                alignment=alignment, seed=seed, max_per_domain=max_per_domain)
    record = diagnostic.to_dict()
    record["map"] = map_coordinates(source, target, labels, source_aligned=source_aligned,
                                    target_aligned=target_aligned, alignment=alignment, seed=seed)
    return record


def _check(x: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2 or not len(arr):
        raise DataError(f"{name}: expected a non-empty [n, d] feature array; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"{name}: its features hold NaN or infinite values")
    return arr


def _cap(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= limit else np.sort(rng.choice(n, size=limit, replace=False))
