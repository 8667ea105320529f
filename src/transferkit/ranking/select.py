"""`--backbone auto`: every sensible contender, scored on validation with the real head.

Transferability scores (LogME and friends, `ranking.rank`) are cheap but indirect; what matters is
the accuracy of the head that will be fitted, on data the head did not train on. So:

1. the candidates — each available pretrained backbone of the modality, the default image
   backbone's spatial grid (`:grid2`), and the modality's from-scratch baseline (`hog`, `mfcc`,
   `tfidf`) — are shortlisted by LogME when there are many (the from-scratch baseline always
   stays in);
2. each shortlisted candidate's features (cached) train the real head on the training split, and
   it is scored by accuracy on the validation split — which, when the data names groups, holds
   out whole groups, so the score measures what a new speaker, site or design will meet;
3. the best two and three are also tried side by side (a concatenation, blocks weighed equally)
   and as a probability ensemble;
4. the best validation accuracy wins; a tie (easy source data reads 100% for several) goes to the
   lower validation log-loss — the better-calibrated, more confident-when-right model — and only
   then to the simpler model (single < concatenation < ensemble), never to the order tried. The
   table says by how much the winner beat from scratch — and when from scratch wins, it says so
   and that is what is fitted.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transferkit.backbones.spec import BackboneSpec, parse_backbone
from transferkit.data.dataset import LabelledData
from transferkit.errors import ConfigError
from transferkit.features import ExtractOptions, extract_features

#: candidates beyond this many are shortlisted by LogME before the full validation
SHORTLIST = 5
#: without a budget, candidates are tried while the whole selection stays within this many times
#: what the first candidate (the modality's default backbone: a default fit's extraction) took
BUDGET_FACTOR = 3.0
KINDS = ("single", "concat", "ensemble")


@dataclass
class Candidate:
    """One contender and its validation score."""

    name: str
    kind: str  # single | concat | ensemble
    members: list[str]
    val_accuracy: float | None = None
    #: mean negative log-probability of the true class on validation: breaks accuracy ties
    val_log_loss: float | None = None
    features: int = 0
    seconds: float = 0.0
    note: str = ""
    scratch: bool = False

    def backbone(self) -> tuple[BackboneSpec, str | None]:
        """What fit builds for this candidate: its backbone spec (without weights) and the weights."""
        if self.kind == "ensemble":
            return BackboneSpec("ensemble", members=tuple(parse_backbone(m) for m in self.members)), None
        spec = parse_backbone(self.name)
        return spec.without_weights(), spec.weights


@dataclass
class Selection:
    """Every candidate tried, the winner, and what it beat."""

    candidates: list[Candidate] = field(default_factory=list)
    winner: Candidate | None = None
    scratch: Candidate | None = None
    validation: str = ""

    @property
    def gain_over_scratch(self) -> float | None:
        """Validation accuracy points the winner has over the from-scratch baseline."""
        if self.winner is None or self.scratch is None or self.scratch.val_accuracy is None:
            return None
        return 100.0 * ((self.winner.val_accuracy or 0.0) - self.scratch.val_accuracy)

    def verdict(self) -> str:
        if self.winner is None:
            return "no candidate could be scored"
        gain = self.gain_over_scratch
        if self.scratch is not None and self.winner.scratch:
            return (f"from scratch wins: {self.winner.name} ({_pct(self.winner.val_accuracy)} on validation) beat "
                    "every pretrained candidate, so transfer does not pay here and that is what is fitted")
        beat = f", {gain:+.1f} points over from scratch ({self.scratch.name})" if gain is not None and self.scratch \
            else ""
        return f"{self.winner.name} ({self.winner.kind}): {_pct(self.winner.val_accuracy)} on validation{beat}"

    def to_dict(self) -> dict[str, Any]:
        return {"validation": self.validation, "verdict": self.verdict(),
                "winner": self.winner.name if self.winner else None,
                "gain_over_scratch_points": self.gain_over_scratch,
                "rows": [{"name": c.name, "kind": c.kind, "members": c.members, "val_accuracy": c.val_accuracy,
                          "val_log_loss": c.val_log_loss,
                          "features": c.features, "seconds": round(c.seconds, 2), "note": c.note,
                          "from_scratch": c.scratch} for c in self.candidates]}

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.table import Table

        table = Table(title=f"--backbone auto: candidates scored on validation ({self.validation})")
        for column, justify in (("candidate", "left"), ("kind", "left"), ("val accuracy", "right"),
                                ("val log-loss", "right"), ("features", "right"), ("seconds", "right"), ("", "left")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        ranked = sorted(self.candidates, key=lambda c: -(c.val_accuracy if c.val_accuracy is not None else -1))
        for c in ranked:
            mark = "[bold green]← fitted[/]" if c is self.winner else ("from scratch" if c.scratch else c.note)
            loss = "" if c.val_log_loss is None else f"{c.val_log_loss:.3f}"
            table.add_row(c.name, c.kind, _pct(c.val_accuracy), loss, str(c.features), f"{c.seconds:.1f}", mark)
        yield table
        yield self.verdict()


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def default_candidates(modality: str) -> list[str]:
    """The contenders of a modality: its available pretrained backbones, the default image backbone's
    grid view, and its from-scratch baseline."""
    from transferkit.backbones import list_backbones
    from transferkit.backbones.registry import PRETRAINED_BACKBONES
    from transferkit.backbones.scratch import SCRATCH_BACKBONES

    names = [e.name for e in list_backbones(modality) if e.available() and e.name != SCRATCH_BACKBONES.get(modality)]
    names.sort(key=lambda n: (n != PRETRAINED_BACKBONES.get(modality), n))
    if modality == "image" and PRETRAINED_BACKBONES["image"] in names:
        names.insert(1, str(BackboneSpec("model", PRETRAINED_BACKBONES["image"], grid=2)))
    if modality in SCRATCH_BACKBONES:
        names.append(SCRATCH_BACKBONES[modality])
    return names


def select(
    data: LabelledData,
    train: Sequence[int],
    val: Sequence[int],
    *,
    candidates: Sequence[str] | None = None,
    cache: Any = None,
    options: ExtractOptions | None = None,
    seed: int = 0,
    shortlist: int = SHORTLIST,
    combine: bool = True,
    validation: str = "",
    budget_seconds: float | None = None,
) -> Selection:
    """Score `candidates` (default: `default_candidates`) on `val` with a linear head fitted on `train`.

    Time is bounded: a candidate is skipped (and the table says so) when the time spent so far plus
    what the slowest candidate so far took would pass `budget_seconds`, or, without one,
    `BUDGET_FACTOR` times what the first candidate took (the default backbone: about a default fit's
    extraction). The from-scratch baseline is always scored (it is cheap and is what transfer is
    measured against); combinations reuse the features already extracted.
    """
    from transferkit.backbones import create_backbone
    from transferkit.backbones.scratch import SCRATCH_BACKBONES
    from transferkit.cache import resolve_cache

    if not len(train) or not len(val):
        raise ConfigError("--backbone auto scores candidates on a validation split; keep one (--val > 0)")
    names = list(candidates) if candidates else default_candidates(data.modality)
    scratch_name = SCRATCH_BACKBONES.get(data.modality)
    store = resolve_cache(cache)
    opts = options or ExtractOptions(progress=False)
    if len(names) > shortlist + 1:
        names = _shortlist(data, train, val, names, scratch_name, shortlist, store, opts, seed)
    classes = sorted(set(data.labels[i] for i in train))
    index = {c: i for i, c in enumerate(classes)}
    items = [data.items[i] for i in (*train, *val)]
    y = np.array([index.get(data.labels[i], -1) for i in (*train, *val)])
    n_train = len(train)
    result = Selection(validation=validation or f"{len(val)} held-out examples")
    scored: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # name → (features, ok, val proba)
    began = time.perf_counter()
    budget, slowest = budget_seconds, 0.0
    for name in names:
        start = time.perf_counter()
        cand = Candidate(name, "single", [name], scratch=name == scratch_name)
        spent = start - began
        if budget is not None and not cand.scratch and spent + slowest > budget:
            cand.note = (f"skipped: over the time budget ({spent:.0f} s spent + ~{slowest:.0f} s for a candidate "
                         f"> {budget:.0f} s{'' if budget_seconds is not None else ', 3x the first candidate'})")
            result.candidates.append(cand)
            continue
        try:
            spec = parse_backbone(name)
            seeded: dict[str, Any] = {"seed": seed} if spec.weights == "random" else {}
            backbone = create_backbone(spec, **seeded)
            feats = extract_features(backbone, items, options=opts, cache=store, description=f"candidate {name}")
        except Exception as exc:  # a candidate that cannot run here is listed, not fatal
            cand.note = f"skipped: {str(exc).splitlines()[0][:80]}"
            result.candidates.append(cand)
            continue
        values = np.zeros((len(items), backbone.num_features), np.float32)
        values[feats.ok] = feats.values
        proba, acc = _score(values, y, feats.ok, n_train, len(classes), seed, blocks=backbone.feature_blocks())
        cand.val_accuracy, cand.features, cand.seconds = acc, backbone.num_features, time.perf_counter() - start
        cand.val_log_loss = log_loss(proba, y[n_train:])
        if not cand.scratch:
            slowest = max(slowest, cand.seconds)
            if budget is None:  # the first candidate's time sets the budget
                budget = BUDGET_FACTOR * (time.perf_counter() - began)
        scored[name] = (values, feats.ok, proba)
        result.candidates.append(cand)
        if cand.scratch:
            result.scratch = cand
    singles = sorted((c for c in result.candidates if c.val_accuracy is not None), key=lambda c: -(c.val_accuracy or 0))
    if combine and len(singles) >= 2:
        for k in (2, 3):
            if len(singles) < k:
                break
            top = singles[:k]
            members = [c.name for c in top]
            start = time.perf_counter()
            values = np.concatenate([scored[m][0] for m in members], axis=1)
            ok = np.logical_and.reduce([scored[m][1] for m in members])
            proba, acc = _score(values, y, ok, n_train, len(classes), seed,
                                blocks=[scored[m][0].shape[1] for m in members])
            concat = BackboneSpec("concat", members=tuple(parse_backbone(m) for m in members))
            result.candidates.append(Candidate(str(concat), "concat", members, acc, log_loss(proba, y[n_train:]),
                                               values.shape[1], time.perf_counter() - start))
            mean = np.mean([scored[m][2] for m in members], axis=0)
            truth = y[n_train:]
            acc = float(np.mean(np.argmax(mean, axis=1) == truth))
            result.candidates.append(Candidate(" | ".join(members), "ensemble", members, acc, log_loss(mean, truth),
                                               int(sum(scored[m][0].shape[1] for m in members)), 0.0))
    valid = [c for c in result.candidates if c.val_accuracy is not None]
    if valid:
        result.winner = pick_winner(valid)
    return result


def pick_winner(candidates: Sequence[Candidate]) -> Candidate:
    """The best validation accuracy; a tie goes to the lower validation log-loss, then to the simpler kind,
    then to fewer features — never to the order the candidates were tried in."""
    return max(candidates, key=lambda c: (round(c.val_accuracy or 0.0, 6), -round(c.val_log_loss or 0.0, 6),
                                          -KINDS.index(c.kind), -c.features))


def log_loss(proba: np.ndarray, truth: np.ndarray) -> float:
    """Mean negative log-probability of the true class (probabilities floored at 1e-12)."""
    p = np.asarray(proba, np.float64)[np.arange(len(truth)), np.asarray(truth, np.int64)]
    return float(-np.mean(np.log(np.clip(p, 1e-12, None)))) if len(truth) else 0.0


def _score(values: np.ndarray, y: np.ndarray, ok: np.ndarray, n_train: int, n_classes: int, seed: int,
           *, blocks: Sequence[int]) -> tuple[np.ndarray, float]:
    """Validation probabilities and accuracy of the linear head fitted on the training rows (C chosen by
    an inner split of them, so the validation rows stay unseen); an unreadable val input counts as wrong."""
    from transferkit.data.split import split_indices
    from transferkit.heads import fit_head, parse_head

    train_rows = np.flatnonzero(ok[:n_train])
    inner = split_indices([int(v) for v in y[train_rows]], val_fraction=0.2, test_fraction=0.0, seed=seed)
    fit_rows, c_rows = train_rows[inner["train"]], train_rows[inner["val"]]
    head, _ = fit_head(parse_head("linear"), values[fit_rows], y[fit_rows], values[c_rows], y[c_rows], n_classes,
                            weights=None, seed=seed, blocks=blocks)
    import torch

    with torch.no_grad():
        logits = head(torch.from_numpy(values[n_train:]))
    proba = torch.softmax(logits.float(), dim=1).numpy()
    proba[~ok[n_train:]] = 1.0 / n_classes
    accuracy = float(np.mean(np.argmax(proba, axis=1) == y[n_train:]))
    return proba, accuracy


def _shortlist(data: LabelledData, train: Sequence[int], val: Sequence[int], names: list[str],
               scratch: str | None, keep: int, store: Any, opts: ExtractOptions, seed: int) -> list[str]:
    """The `keep` candidates LogME ranks best on a subsample of the training split, plus from scratch."""
    from transferkit.ranking.rank import rank

    others = [n for n in names if n != scratch]
    table = rank(data.subset(list(train)), backbones=others, metrics="logme", select="logme", subsample=500,
                 seed=seed, cache=store, options=opts)
    chosen = table.order("logme")[:keep]
    return chosen + ([scratch] if scratch else [])
