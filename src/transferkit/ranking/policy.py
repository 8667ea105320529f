"""The selection policy: score candidates, say how far the metrics agree, pick one and say why.

Input is one feature matrix per candidate (a backbone, a random-init control, or one layer of a
backbone) over the same labelled samples; output is a `RankingTable`. The policy decides:

- **what is scored**: every requested metric plus the kNN baseline (always shown: studies find
  it hard to beat); LEEP/NCE only for candidates that carry a source classifier head.
- **what is trusted**: a metric is marked *unreliable* — shown, never used to pick — when it
  cannot separate the candidates (every score equal), or, for SFDA, when it is measured on fewer
  samples than feature dimensions (SFDA scores the samples it fitted; with N < D every backbone
  fits its labels and the score saturates near 0, whatever the backbone).
- **the pick**: the best finite score of the chosen metric (LogME by default); when that metric
  is unreliable or missing, the first reliable one of LogME, kNN, H-score, in that order, and the
  table says so. Ties go to the higher kNN accuracy, then to the name.
- **agreement**: Kendall's τ between the candidate orderings of every pair of metrics.

Bad input gives a clear `DataError` (fewer than two classes with two samples each) or a stated
fallback (classes with a single sample are left out of scoring; a candidate whose features are
not finite is reported, not scored). No score is ever NaN.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from transferkit.errors import ConfigError, DataError, TransferkitError
from transferkit.jsontypes import JSONObject
from transferkit.params import SUBSAMPLE
from transferkit.ranking import ESTIMATORS, make_estimator

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.table import Table

#: metrics scored when none are asked for: the fast, robust ones (GBC and H-score on request).
DEFAULT_METRICS: tuple[str, ...] = ("logme", "sfda", "leep", "nce", "knn")
#: the metric that picks unless told otherwise.
DEFAULT_SELECT = "logme"
#: the order in which metrics stand in when the chosen one cannot pick.
FALLBACK_ORDER: tuple[str, ...] = ("logme", "knn", "hscore")
#: how many samples ranking scores by default (a stratified subsample of the data).
DEFAULT_SUBSAMPLE = SUBSAMPLE.default

LABELS = {"logme": "LogME", "sfda": "SFDA", "hscore": "H-score", "gbc": "GBC", "leep": "LEEP",
          "nce": "NCE", "knn": "kNN acc"}


def canonical_metric(name: str) -> str:
    """The registry key of metric ``name`` ('LogME', 'h-score' → 'logme', 'hscore'); unknown → ConfigError."""
    key = name.strip().lower().replace("-", "").replace("_", "")
    make_estimator(key)  # raises ConfigError with close matches for an unknown name
    return key


def parse_metrics(metrics: str | Sequence[str] | None) -> list[str]:
    """Metric names from a list or a comma-separated string, canonical, deduplicated, kNN last-added."""
    if metrics is None:
        names: list[str] = list(DEFAULT_METRICS)
    elif isinstance(metrics, str):
        names = [m for m in metrics.split(",") if m.strip()]
    else:
        names = list(metrics)
    if not names:
        raise ConfigError("metrics is empty; pass at least one of " + ", ".join(ESTIMATORS))
    out = list(dict.fromkeys(canonical_metric(m) for m in names))
    if "knn" not in out:
        out.append("knn")  # every ranking table shows the kNN baseline
    return out


# -- sampling ------------------------------------------------------------------------------------


def stratified_subsample(labels: Sequence[object], n: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of a class-stratified subsample of about ``n`` of ``labels`` (all when n is None or ≥ len).

    Each class gets its share of ``n`` by largest remainder, but at least 2 samples when it has
    them (so every class can be scored), never more than it has. Same labels and seed, same indices.
    """
    y = np.asarray([str(v) for v in labels])
    total = y.size
    if n is None or n >= total:
        return np.arange(total)
    if n < 2:
        raise ConfigError(f"subsample must be at least 2 (or None for all samples); got {n}")
    classes, codes = np.unique(y, return_inverse=True)
    counts = np.bincount(codes, minlength=classes.size)
    exact = counts * n / total
    quota = np.floor(exact).astype(int)
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: max(0, n - int(quota.sum()))]] += 1
    quota = np.minimum(counts, np.maximum(quota, np.minimum(counts, 2)))
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(codes == c), size=q, replace=False) for c, q in enumerate(quota)]
    return np.sort(np.concatenate(chosen))


# -- the table -----------------------------------------------------------------------------------


@dataclass
class RankingRow:
    """One candidate: its scores (None where not computed), times and feature size."""

    name: str
    backbone: str
    weights: str | None = None
    layer: str | None = None
    num_features: int = 0
    n_samples: int = 0
    scores: dict[str, float | None] = field(default_factory=dict)
    #: metric → why it has no score (no source head, degenerate input…)
    missing: dict[str, str] = field(default_factory=dict)
    extract_seconds: float = 0.0
    score_seconds: float = 0.0
    #: features read from the cache rather than extracted now
    cached: int = 0
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.extract_seconds + self.score_seconds


@dataclass
class RankingTable:
    """Scores of every candidate under every metric, their agreement, and the pick with its reason.

    Prints as rich tables (``print(table)`` or ``console.print(table)``); ``to_pandas()`` gives one
    row per candidate, ``to_dict()`` a JSON-able summary.
    """

    rows: list[RankingRow]
    metrics: list[str]
    selected_metric: str
    picked_by: str | None
    pick: str | None
    reason: str
    #: metric → metric → Kendall τ between the two orderings of the candidates (None: undefined)
    agreement: dict[str, dict[str, float | None]]
    unreliable: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    n_samples: int = 0
    n_classes: int = 0
    seconds: float = 0.0

    # -- access --------------------------------------------------------------------------------
    def row(self, name: str) -> RankingRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no candidate named {name!r}; candidates: {', '.join(r.name for r in self.rows)}")

    @property
    def best(self) -> RankingRow | None:
        """The picked candidate's row (None when nothing could be scored)."""
        return None if self.pick is None else self.row(self.pick)

    def order(self, metric: str) -> list[str]:
        """Candidate names from best to worst by ``metric`` (candidates without a score left out)."""
        scored = [(r.scores.get(metric), r.name) for r in self.rows]
        ranked = sorted(((s, n) for s, n in scored if s is not None), key=lambda t: (-t[0], t[1]))
        return [n for _, n in ranked]

    # -- conversion ----------------------------------------------------------------------------
    def to_pandas(self) -> pd.DataFrame:
        """One row per candidate: identity, feature size, each score, times, the pick."""
        import pandas as pd

        records = []
        ranks = {name: i + 1 for i, name in enumerate(self.order(self.picked_by or self.selected_metric))}
        for r in self.rows:
            rec: dict[str, object] = {
                "candidate": r.name, "backbone": r.backbone, "weights": r.weights or "pretrained",
                "layer": r.layer, "num_features": r.num_features, "n_samples": r.n_samples,
            }
            rec.update({m: r.scores.get(m) for m in self.metrics})
            rec.update({"rank": ranks.get(r.name), "extract_s": round(r.extract_seconds, 3),
                        "score_s": round(r.score_seconds, 3), "total_s": round(r.seconds, 3),
                        "picked": r.name == self.pick, "error": r.error})
            records.append(rec)
        return pd.DataFrame.from_records(records)

    def to_dict(self) -> JSONObject:
        """JSON-able: candidates with scores, the pick, its reason, agreement and notes."""
        return {
            "pick": self.pick,
            "selected_metric": self.selected_metric,
            "picked_by": self.picked_by,
            "reason": self.reason,
            "metrics": list(self.metrics),
            "n_samples": self.n_samples,
            "n_classes": self.n_classes,
            "seconds": round(self.seconds, 3),
            "candidates": [
                {"name": r.name, "backbone": r.backbone, "weights": r.weights, "layer": r.layer,
                 "num_features": r.num_features, "n_samples": r.n_samples, "scores": dict(r.scores),
                 "missing": dict(r.missing), "extract_seconds": round(r.extract_seconds, 3),
                 "score_seconds": round(r.score_seconds, 3), "cached": r.cached, "error": r.error}
                for r in self.rows
            ],
            "agreement": self.agreement,
            "unreliable": dict(self.unreliable),
            "notes": list(self.notes),
        }

    # -- printing ------------------------------------------------------------------------------
    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.table import Table
        from rich.text import Text

        title = f"transferability ranking: {self.n_samples} samples, {self.n_classes} classes"
        table = Table(title=title)
        table.add_column("#", justify="right")
        table.add_column("candidate", no_wrap=True, min_width=max(len(r.name) for r in self.rows) + 2)
        table.add_column("D", justify="right")
        for m in self.metrics:
            flag = "*" if m in self.unreliable else ""
            style = "bold" if m == self.picked_by else ""
            table.add_column(LABELS.get(m, m) + flag, justify="right", style=style)
        table.add_column("time", justify="right")
        ranks = {name: i + 1 for i, name in enumerate(self.order(self.picked_by or self.selected_metric))}
        for r in sorted(self.rows, key=lambda r: (ranks.get(r.name, len(self.rows) + 1), r.name)):
            cells = [str(ranks.get(r.name, "-")), ("[green]→ [/]" if r.name == self.pick else "") + r.name,
                     str(r.num_features)]
            for m in self.metrics:
                s = r.scores.get(m)
                cells.append("n/a" if s is None else f"{s:.3f}" if m == "knn" else f"{s:.4g}")
            cells.append(f"{r.seconds:.1f}s")
            table.add_row(*cells)
        yield table
        agreement = self._agreement_table()
        if agreement is not None:
            yield agreement
        for metric, why in self.unreliable.items():
            yield Text(f"* {LABELS.get(metric, metric)}: {why}", style="yellow")
        cached = [r.name for r in self.rows if r.cached and r.cached >= r.n_samples > 0]
        if cached:
            yield Text(f"features from the cache (nothing extracted): {', '.join(cached)}", style="dim")
        for note in self.notes:
            yield Text(f"note: {note}", style="yellow")
        for r in self.rows:
            if r.error:
                yield Text(f"{r.name}: not scored: {r.error}", style="red")
        yield Text.from_markup(f"[bold]pick:[/] {self.reason}")

    def _agreement_table(self) -> Table | None:
        from rich.table import Table

        metrics = [m for m in self.metrics if m in self.agreement]
        if len(metrics) < 2:
            return None
        table = Table(title="agreement between metrics (Kendall τ of the candidate orderings)")
        table.add_column("")
        for m in metrics:
            table.add_column(LABELS.get(m, m), justify="right")
        for a in metrics:
            cells = []
            for b in metrics:
                tau = self.agreement[a].get(b)
                cells.append("—" if tau is None else f"{tau:+.2f}")
            table.add_row(LABELS.get(a, a), *cells)
        return table

    def __str__(self) -> str:
        from rich.console import Console

        buf = io.StringIO()
        Console(file=buf, width=120, force_terminal=False, color_system=None).print(self)
        return buf.getvalue()


# -- scoring -------------------------------------------------------------------------------------


@dataclass
class CandidateFeatures:
    """What the policy scores for one candidate: features (N, D) and, optionally, source probabilities."""

    name: str
    features: np.ndarray
    source_probabilities: np.ndarray | None = None
    backbone: str = ""
    weights: str | None = None
    layer: str | None = None
    extract_seconds: float = 0.0
    cached: int = 0
    #: rows of the shared label vector these features belong to (None: all of them)
    rows: np.ndarray | None = None


def usable_classes(labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Mask of samples whose class has ≥ 2 samples, and notes on what was left out.

    Raises `DataError` when fewer than two such classes remain.
    """
    classes, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    codes = codes.reshape(-1)
    keep = counts[codes] >= 2
    notes: list[str] = []
    singles = [str(c) for c, n in zip(classes, counts, strict=True) if n < 2]
    remaining = int((counts >= 2).sum())
    if remaining < 2:
        found = ", ".join(f"{c!r} ({n})" for c, n in zip(classes[:6], counts[:6], strict=False))
        raise DataError(
            f"ranking needs at least 2 classes with at least 2 samples each; found {classes.size} "
            f"class(es): {found or 'none'}. Add labelled samples, or raise --subsample."
        )
    if singles:
        shown = ", ".join(singles[:5]) + (f" and {len(singles) - 5} more" if len(singles) > 5 else "")
        notes.append(f"left {len(singles)} class(es) with a single sample out of scoring ({shown}); "
                     "a class needs 2 samples to be scored (raise --subsample or add samples)")
    return keep, notes


def _kendall(a: Sequence[float | None], b: Sequence[float | None]) -> float | None:
    from scipy.stats import kendalltau

    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    if len(pairs) < 2:
        return None
    xs, ys = zip(*pairs, strict=True)
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    tau = float(kendalltau(xs, ys).statistic)
    return None if not np.isfinite(tau) else round(tau, 4)


def score_candidates(
    candidates: Sequence[CandidateFeatures],
    labels: ArrayLike,
    *,
    metrics: str | Sequence[str] | None = None,
    select: str = DEFAULT_SELECT,
    score_threads: int | None = 1,
    notes: Sequence[str] = (),
) -> RankingTable:
    """Score each candidate's features against ``labels`` with every metric, then pick.

    ``labels`` has one entry per row of the features (or per index in ``rows``). ``score_threads``
    caps BLAS threads while scoring (None: leave as is); 1 is the fastest on a shared machine.
    """
    from transferkit.runtime import threads_limited

    start = time.perf_counter()
    names = parse_metrics(metrics)
    select_key = canonical_metric(select)
    if select_key not in names:
        names.insert(0, select_key)
    y_all = np.asarray([str(v) for v in np.asarray(labels, dtype=object)])
    if len({c.name for c in candidates}) != len(candidates):
        raise ConfigError("candidate names must be unique; got " + ", ".join(c.name for c in candidates))
    if not candidates:
        raise ConfigError("no candidates to rank; pass at least one backbone")
    all_notes = list(notes)
    rows: list[RankingRow] = []
    n_scored = 0
    n_classes = 0
    for cand in candidates:
        y = y_all if cand.rows is None else y_all[cand.rows]
        X = np.asarray(cand.features)
        row = RankingRow(name=cand.name, backbone=cand.backbone or cand.name, weights=cand.weights,
                         layer=cand.layer, num_features=int(X.shape[1]) if X.ndim == 2 else 0,
                         extract_seconds=cand.extract_seconds, cached=cand.cached)
        rows.append(row)
        if X.ndim != 2 or X.shape[0] != y.size:
            row.error = f"features of shape {X.shape} do not match {y.size} labels"
            continue
        keep, class_notes = usable_classes(y)
        for n in class_notes:
            if n not in all_notes:
                all_notes.append(n)
        X, y = X[keep], y[keep]
        P = None if cand.source_probabilities is None else np.asarray(cand.source_probabilities)[keep]
        row.n_samples = int(y.size)
        n_scored, n_classes = max(n_scored, y.size), max(n_classes, np.unique(y).size)
        bad = ~np.isfinite(X)
        if bad.any():
            n_rows = int(bad.any(axis=1).sum())
            row.error = (f"{n_rows} of {X.shape[0]} feature rows contain NaN/inf (a broken backbone, or an "
                         "fp16/bf16 overflow: try --precision fp32)")
            continue
        t0 = time.perf_counter()
        with threads_limited(score_threads):
            _score_row(row, names, X, P, y)
        row.score_seconds = time.perf_counter() - t0

    unreliable = _unreliable(rows, names)
    agreement = {a: {b: _kendall([r.scores.get(a) for r in rows], [r.scores.get(b) for r in rows])
                     for b in names} for a in names}
    agreement = {a: v for a, v in agreement.items() if any(r.scores.get(a) is not None for r in rows)}
    pick, picked_by, reason = _pick(rows, names, select_key, unreliable, agreement)
    return RankingTable(rows=rows, metrics=names, selected_metric=select_key, picked_by=picked_by, pick=pick,
                        reason=reason, agreement=agreement, unreliable=unreliable, notes=all_notes,
                        n_samples=n_scored, n_classes=n_classes, seconds=time.perf_counter() - start)


def _score_row(row: RankingRow, metrics: Sequence[str], X: np.ndarray, P: np.ndarray | None, y: np.ndarray) -> None:
    """Each metric's score of features `X` (or source probabilities `P`) against `y` into `row`; a metric that
    cannot score them leaves None and says why in `row.missing`."""
    for metric in metrics:
        est = make_estimator(metric)
        inputs = P if est.input_kind == "source_probabilities" else X
        if inputs is None:
            row.scores[metric] = None
            row.missing[metric] = "no source classifier head"
            continue
        try:
            row.scores[metric] = float(est.fit(inputs, y).score_)
        except TransferkitError as exc:
            row.scores[metric] = None
            row.missing[metric] = str(exc)


def _unreliable(rows: Sequence[RankingRow], metrics: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in metrics:
        scored = [r for r in rows if r.scores.get(m) is not None]
        if m == "sfda":
            small = [r for r in scored if r.n_samples < r.num_features]
            if small:
                out[m] = (f"measured on fewer samples than feature dimensions (N={small[0].n_samples} < "
                          f"D={small[0].num_features}); SFDA scores the samples it fitted and saturates "
                          "near 0 for every backbone: shown, not used to pick (raise --subsample above D)")
                continue
        values = [float(v) for r in scored if (v := r.scores.get(m)) is not None]
        if len(values) >= 2 and max(values) - min(values) <= 1e-9 * max(1.0, abs(max(values))):
            out[m] = "every candidate scores the same: it cannot tell them apart"
    return out


def _pick(
    rows: Sequence[RankingRow], metrics: Sequence[str], select: str, unreliable: Mapping[str, str],
    agreement: Mapping[str, Mapping[str, float | None]],
) -> tuple[str | None, str | None, str]:
    """The best candidate by the first usable metric, and a sentence saying why."""
    def usable(m: str) -> bool:
        return m in metrics and m not in unreliable and any(r.scores.get(m) is not None for r in rows)

    order = [select] + [m for m in FALLBACK_ORDER if m != select] + [m for m in metrics if m not in FALLBACK_ORDER]
    by = next((m for m in order if usable(m)), None)
    if by is None:
        return None, None, "nothing could be scored: " + "; ".join(
            f"{r.name}: {r.error or 'no usable score'}" for r in rows)
    ranked = sorted((r for r in rows if r.scores.get(by) is not None),
                    key=lambda r: (-r.scores[by], -(r.scores.get("knn") or 0.0), r.name))  # type: ignore[operator]
    best = ranked[0]
    label = LABELS.get(by, by)
    parts = [f"{best.name}, the highest {label} ({best.scores[by]:.4g}"]
    if len(ranked) > 1:
        parts[0] += f" vs {ranked[1].scores[by]:.4g} for {ranked[1].name}, the next best)"
    else:
        parts[0] += ", the only candidate scored)"
    if by != select:
        why = unreliable.get(select) or "it has no score for these candidates"
        parts.append(f"{LABELS.get(select, select)} was asked for but {why}, so {label} picked")
    if by != "knn" and best.scores.get("knn") is not None:
        knn_order = sorted((r for r in rows if r.scores.get("knn") is not None),
                           key=lambda r: (-r.scores["knn"], r.name))  # type: ignore[operator]
        place = [r.name for r in knn_order].index(best.name) + 1
        verdict = "agrees" if place == 1 else f"ranks it {place} of {len(knn_order)}"
        parts.append(f"the kNN baseline {verdict} (kNN accuracy {best.scores['knn']:.3f})")
    taus = {m: t for m, t in agreement.get(by, {}).items() if m != by and t is not None and m not in unreliable}
    if taus:
        mean = sum(taus.values()) / len(taus)
        parts.append(f"the other metrics agree with {label} at mean Kendall τ {mean:+.2f} "
                     f"({', '.join(f'{LABELS.get(m, m)} {t:+.2f}' for m, t in taus.items())})")
    return best.name, by, "; ".join(parts) + "."
