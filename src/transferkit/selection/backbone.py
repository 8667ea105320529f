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
5. with a target (`fit --adapt-to`), in-domain validation cannot see the shift: the candidates are
   ranked instead by DEV (`adapt.dev`; You et al., ICML 2019) — each candidate's validation errors
   weighted by the density ratio target/source a domain classifier estimates in that candidate's
   own features (at most `DEV_TARGET_INPUTS` target inputs, a seeded subsample), with the control
   variate; a tie goes to DEV's log-loss, then as above. The table shows both figures.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from transferkit.backbones.spec import BackboneSpec, parse_backbone
from transferkit.data.dataset import LabelledData
from transferkit.errors import ConfigError
from transferkit.features import ExtractOptions, extract_features
from transferkit.jsontypes import JSONObject
from transferkit.params import SEED

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult

    from transferkit.cache import FeatureCache

T = TypeVar("T")

#: candidates beyond this many are shortlisted by LogME before the full validation
SHORTLIST = 5
#: without a budget, candidates are tried while the whole selection stays within this many times
#: what the first candidate (the modality's default backbone: a default fit's extraction) took
BUDGET_FACTOR = 3.0
KINDS = ("single", "concat", "ensemble")
#: target inputs each candidate extracts for DEV's density ratio at most (a seeded subsample)
DEV_TARGET_INPUTS = 500


@dataclass
class Candidate:
    """One contender and its validation score."""

    name: str
    kind: str  # single | concat | ensemble
    members: list[str]
    #: the members' parsed names (what fit builds), in the order of `members`
    specs: tuple[BackboneSpec, ...] = ()
    val_accuracy: float | None = None
    #: mean negative log-probability of the true class on validation: breaks accuracy ties
    val_log_loss: float | None = None
    features: int = 0
    seconds: float = 0.0
    note: str = ""
    scratch: bool = False
    #: with a target: DEV's estimate of the target accuracy and its log-loss (`adapt.dev`)
    dev_accuracy: float | None = None
    dev_log_loss: float | None = None
    #: inputs whose features this candidate computed (0: all read from the feature cache)
    extracted: int = 0

    def backbone(self) -> tuple[BackboneSpec, str | None]:
        """What fit builds for this candidate: its backbone spec (without weights) and the weights."""
        if self.kind == "ensemble":
            return BackboneSpec("ensemble", members=self.specs), None
        spec = self.specs[0] if self.kind == "single" else BackboneSpec("concat", members=self.specs)
        return spec.without_weights(), spec.weights


@dataclass
class Selection:
    """Every candidate tried, the winner, and what it beat."""

    candidates: list[Candidate] = field(default_factory=list)
    winner: Candidate | None = None
    scratch: Candidate | None = None
    validation: str = ""
    #: what ranked the candidates: validation accuracy, or DEV with a target
    criterion: str = "validation accuracy (a tie: validation log-loss)"

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

    def to_dict(self) -> JSONObject:
        return {"validation": self.validation, "verdict": self.verdict(), "criterion": self.criterion,
                "winner": self.winner.name if self.winner else None,
                "gain_over_scratch_points": self.gain_over_scratch,
                "rows": [{"name": c.name, "kind": c.kind, "members": c.members, "val_accuracy": c.val_accuracy,
                          "val_log_loss": c.val_log_loss, "dev_accuracy": c.dev_accuracy,
                          "dev_log_loss": c.dev_log_loss,
                          "features": c.features, "seconds": round(c.seconds, 2), "note": c.note,
                          "from_scratch": c.scratch} for c in self.candidates]}

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.table import Table

        dev = any(c.dev_accuracy is not None for c in self.candidates)
        table = Table(title=f"--backbone auto: candidates scored on validation ({self.validation}); "
                            f"ranked by {self.criterion}")
        columns = [("candidate", "left"), ("kind", "left"), ("val accuracy", "right"), ("val log-loss", "right")]
        columns += [("DEV target acc.", "right"), ("DEV log-loss", "right")] if dev else []
        for column, justify in (*columns, ("features", "right"), ("seconds", "right"), ("", "left")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        key = (lambda c: c.dev_accuracy) if dev else (lambda c: c.val_accuracy)
        ranked = sorted(self.candidates, key=lambda c: -(key(c) if key(c) is not None else -1e9))
        for c in ranked:
            mark = "[bold green]← fitted[/]" if c is self.winner else ("from scratch" if c.scratch else c.note)
            loss = "" if c.val_log_loss is None else f"{c.val_log_loss:.3f}"
            extra = [_pct(c.dev_accuracy), "" if c.dev_log_loss is None else f"{c.dev_log_loss:.3f}"] if dev else []
            table.add_row(c.name, c.kind, _pct(c.val_accuracy), loss, *extra, str(c.features), f"{c.seconds:.1f}",
                          mark)
        yield table
        yield self.verdict()


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def default_candidates(modality: str) -> list[BackboneSpec]:
    """The contenders of a modality: its available pretrained backbones, the default image backbone's
    grid view, and its from-scratch baseline."""
    from transferkit.backbones import list_backbones
    from transferkit.backbones.registry import PRETRAINED_BACKBONES
    from transferkit.backbones.scratch import SCRATCH_BACKBONES

    names = [e.name for e in list_backbones(modality) if e.available() and e.name != SCRATCH_BACKBONES.get(modality)]
    names.sort(key=lambda n: (n != PRETRAINED_BACKBONES.get(modality), n))
    specs = [BackboneSpec("model", n) for n in names]
    if modality == "image" and PRETRAINED_BACKBONES["image"] in names:
        specs.insert(1, BackboneSpec("model", PRETRAINED_BACKBONES["image"], grid=2))
    if modality in SCRATCH_BACKBONES:
        specs.append(BackboneSpec("model", SCRATCH_BACKBONES[modality]))
    return specs


def select(
    data: LabelledData,
    train: Sequence[int],
    val: Sequence[int],
    *,
    candidates: Sequence[str | BackboneSpec] | None = None,
    cache: FeatureCache | str | Path | bool | None = None,
    options: ExtractOptions | None = None,
    seed: int = SEED.default,
    shortlist: int = SHORTLIST,
    combine: bool = True,
    validation: str = "",
    target: Sequence[object] | None = None,
    budget_seconds: float | None = None,
) -> Selection:
    """Score `candidates` (default: `default_candidates`) on `val` with a linear head fitted on `train`;
    with `target` (unlabelled inputs of where the model is used), rank them by DEV (point 5 above).

    Time is bounded: a candidate is skipped (and the table says so) when the time spent so far plus
    what the slowest candidate so far took would pass `budget_seconds`, or, without one,
    `BUDGET_FACTOR` times what the first candidate took (the default backbone: about a default fit's
    extraction; if its features were all in the cache, the time to the first candidate that extracted).
    The first candidate and the from-scratch baseline are always scored (the baseline is cheap and is
    what transfer is measured against); combinations reuse the features already extracted.
    """
    from transferkit.backbones.scratch import SCRATCH_BACKBONES
    from transferkit.cache import resolve_cache

    if not len(train) or not len(val):
        raise ConfigError("--backbone auto scores candidates on a validation split; keep one (--val > 0)")
    # the Python API's boundary: a name's text is parsed here (the CLI hands the specs it parsed)
    specs = ([c if isinstance(c, BackboneSpec) else parse_backbone(c) for c in candidates] if candidates
             else default_candidates(data.modality))
    scratch_name = SCRATCH_BACKBONES.get(data.modality)
    store = resolve_cache(cache)
    opts = options or ExtractOptions(progress=False)
    if len(specs) > shortlist + 1:
        specs = _shortlist(data, train, val, specs, scratch_name, shortlist, store, opts, seed)
    classes = sorted(set(data.labels[i] for i in train))
    index = {c: i for i, c in enumerate(classes)}
    items = [data.items[i] for i in (*train, *val)]
    y = np.array([index.get(data.labels[i], -1) for i in (*train, *val)])
    n_train = len(train)
    result = Selection(validation=validation or f"{len(val)} held-out examples")
    scored: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # name → (features, ok, val proba)
    target_items = target_sample(target, seed)
    target_values: dict[str, np.ndarray] = {}  # name → the target's features (readable ones)
    if target_items:
        result.criterion = ("DEV: validation errors weighted by the target/source density ratio, with a control "
                            "variate (You et al., ICML 2019); a tie: DEV log-loss")
    clock = _Budget(budget_seconds)
    for spec in specs:
        name = str(spec)
        skipped = clock.skip(spec, scratch=name == scratch_name)
        if skipped is not None:
            result.candidates.append(skipped)
            continue
        cand, entry, tvalues = _candidate(spec, name == scratch_name, items, y, n_train, len(classes), seed=seed,
                                          options=opts, cache=store, target=target_items)
        clock.record(cand)
        if entry is not None:
            scored[name] = entry
        if tvalues is not None:
            target_values[name] = tvalues
        result.candidates.append(cand)
        if cand.scratch:
            result.scratch = cand
    singles = sorted((c for c in result.candidates if c.val_accuracy is not None), key=lambda c: -(c.val_accuracy or 0))
    if combine and len(singles) >= 2:
        result.candidates.extend(_combinations(singles, scored, y, n_train, len(classes), seed,
                                               target_values if target_items else None))
    valid = [c for c in result.candidates if c.val_accuracy is not None]
    if valid:
        result.winner = pick_winner(valid)
    return result


@dataclass
class _Budget:
    """The time `select` may take: `seconds`, or `BUDGET_FACTOR` times what it took up to the end of the
    first candidate that extracted its features — one read whole from the feature cache (a default fit
    ran before) takes seconds, and would leave no time for a candidate that has to extract."""

    seconds: float | None
    began: float = field(default_factory=time.perf_counter)
    slowest: float = 0.0
    #: False once the budget is set from the first extracting candidate's time (times `BUDGET_FACTOR`)
    given: bool = True

    def skip(self, spec: BackboneSpec, *, scratch: bool) -> Candidate | None:
        """The row of a candidate skipped for time, or None to score it (the first one and from scratch always)."""
        spent = time.perf_counter() - self.began
        if scratch or self.seconds is None or not self.slowest or spent + self.slowest <= self.seconds:
            return None
        asked = "" if self.given else f", {BUDGET_FACTOR:g}x the time to the first candidate that extracted"
        return Candidate(str(spec), "single", [str(spec)], (spec,), note=f"skipped: over the time budget "
                         f"({spent:.0f} s spent + ~{self.slowest:.0f} s for a candidate > {self.seconds:.0f} s{asked})")

    def record(self, cand: Candidate) -> None:
        if cand.scratch or cand.val_accuracy is None:
            return
        self.slowest = max(self.slowest, cand.seconds)
        if self.seconds is None and cand.extracted:  # the first candidate that extracted sets the budget
            self.given = False
            self.seconds = BUDGET_FACTOR * (time.perf_counter() - self.began)


def _candidate(spec: BackboneSpec, scratch: bool, items: list[object], y: np.ndarray, n_train: int, n_classes: int, *,
               seed: int, options: ExtractOptions, cache: FeatureCache | None, target: list[object]
               ) -> tuple[Candidate, tuple[np.ndarray, np.ndarray, np.ndarray] | None, np.ndarray | None]:
    """One candidate scored on validation (and by DEV given `target` inputs): the candidate, its (features, ok,
    validation probabilities) and the target's features; a candidate that cannot run here is listed, not fatal."""
    from transferkit.backbones import build_backbone

    start = time.perf_counter()
    name = str(spec)
    cand = Candidate(name, "single", [name], (spec,), scratch=scratch)
    try:
        backbone = build_backbone(spec, seed=seed) if spec.weights == "random" else build_backbone(spec)
        feats = extract_features(backbone, items, options=options, cache=cache, description=f"candidate {name}")
    except Exception as exc:
        cand.note = f"skipped: {str(exc).splitlines()[0][:80]}"
        return cand, None, None
    readable = np.flatnonzero(feats.ok[:n_train])
    if len(np.unique(y[readable])) < 2:  # nothing to fit a head on: said in the table (fit then says why)
        reason = next(iter(feats.failed.values()), "")
        cand.note = (f"skipped: {len(readable)} of {n_train} training inputs readable"
                     + (f" ({reason.splitlines()[0][:160]})" if reason else ""))
        return cand, None, None
    values = np.zeros((len(items), backbone.num_features), np.float32)
    values[feats.ok] = feats.values
    proba, acc = _score(values, y, feats.ok, n_train, n_classes, seed, blocks=backbone.feature_blocks())
    cand.val_accuracy, cand.features, cand.extracted = acc, backbone.num_features, feats.extracted
    cand.val_log_loss = log_loss(proba, y[n_train:])
    tvalues = None
    if target:
        tfeats = extract_features(backbone, target, options=options, cache=cache,
                                  description=f"candidate {name}: target")
        tvalues = np.asarray(tfeats.values, np.float32)
        _dev(cand, values, feats.ok, tvalues, proba, y, n_train, seed)
    cand.seconds = time.perf_counter() - start
    return cand, (values, feats.ok, proba), tvalues


def _combinations(singles: Sequence[Candidate], scored: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                  y: np.ndarray, n_train: int, n_classes: int, seed: int,
                  target_values: dict[str, np.ndarray] | None = None) -> list[Candidate]:
    """The best two and three side by side (a concatenation, blocks weighed equally) and as a probability
    ensemble, scored on validation like the single candidates (and by DEV when `target_values` are given)."""
    out: list[Candidate] = []
    for k in (2, 3):
        if len(singles) < k:
            break
        members = [c.name for c in singles[:k]]
        parts = tuple(p for c in singles[:k] for p in c.specs)
        start = time.perf_counter()
        values = np.concatenate([scored[m][0] for m in members], axis=1)
        ok = np.logical_and.reduce([scored[m][1] for m in members])
        proba, acc = _score(values, y, ok, n_train, n_classes, seed, blocks=[scored[m][0].shape[1] for m in members])
        concat = BackboneSpec("concat", members=parts)
        cat = Candidate(str(concat), "concat", members, parts, acc, log_loss(proba, y[n_train:]), values.shape[1])
        mean = np.mean([scored[m][2] for m in members], axis=0)
        truth = y[n_train:]
        acc = float(np.mean(np.argmax(mean, axis=1) == truth))
        ens = Candidate(" | ".join(members), "ensemble", members, parts, acc, log_loss(mean, truth),
                        int(sum(scored[m][0].shape[1] for m in members)), 0.0)
        if target_values is not None and len({len(target_values[m]) for m in members}) == 1:
            # DEV's density ratio in the members' features side by side, for both
            tvalues = np.concatenate([target_values[m] for m in members], axis=1)
            weights = _dev(cat, values, ok, tvalues, proba, y, n_train, seed)
            _dev(ens, values, ok, tvalues, mean, y, n_train, seed, importance=weights)
        cat.seconds = time.perf_counter() - start
        out += [cat, ens]
    return out


def pick_winner(candidates: Sequence[Candidate]) -> Candidate:
    """The best validation accuracy; a tie goes to the lower validation log-loss, then to the simpler kind,
    then to fewer features — never to the order the candidates were tried in. Where candidates carry DEV
    figures (a target was given), DEV's target accuracy and log-loss rank them instead."""
    if any(c.dev_accuracy is not None for c in candidates):
        return max(candidates, key=lambda c: (c.dev_accuracy is not None, round(c.dev_accuracy or 0.0, 6),
                                              -round(c.dev_log_loss or 0.0, 6), -KINDS.index(c.kind), -c.features))
    return max(candidates, key=lambda c: (round(c.val_accuracy or 0.0, 6), -round(c.val_log_loss or 0.0, 6),
                                          -KINDS.index(c.kind), -c.features))


def target_sample(target: Sequence[T] | None, seed: int) -> list[T]:
    """At most DEV_TARGET_INPUTS of the target's inputs (a seeded subsample, in their order)."""
    if not target:
        return []
    items = list(target)
    if len(items) <= DEV_TARGET_INPUTS:
        return items
    keep = np.sort(np.random.default_rng(seed).permutation(len(items))[:DEV_TARGET_INPUTS])
    return [items[i] for i in keep]


def _dev(cand: Candidate, values: np.ndarray, ok: np.ndarray, target: np.ndarray, proba: np.ndarray, y: np.ndarray,
         n_train: int, seed: int, *, importance: np.ndarray | None = None) -> np.ndarray | None:
    """Fill `cand`'s DEV figures: importance weights of the validation rows from a domain classifier
    trained on the readable training rows against the target's features; returns the weights."""
    from transferkit.adapt.dev import MIN_DOMAIN_INPUTS, dev_score, importance_weights

    train_rows = np.flatnonzero(ok[:n_train])
    if importance is None:
        if len(target) < MIN_DOMAIN_INPUTS or len(train_rows) < MIN_DOMAIN_INPUTS:
            cand.note = cand.note or "DEV: too few readable target inputs"
            return None
        importance = importance_weights(values[train_rows], target, values[n_train:], seed=seed)
    score = dev_score(proba, y[n_train:], importance)
    cand.dev_accuracy, cand.dev_log_loss = score.accuracy, score.log_loss
    return importance


def log_loss(proba: np.ndarray, truth: np.ndarray) -> float:
    """Mean negative log-probability of the true class (probabilities floored at 1e-12)."""
    p = np.asarray(proba, np.float64)[np.arange(len(truth)), np.asarray(truth, np.int64)]
    return float(-np.mean(np.log(np.clip(p, 1e-12, None)))) if len(truth) else 0.0


def _score(values: np.ndarray, y: np.ndarray, ok: np.ndarray, n_train: int, n_classes: int, seed: int,
           *, blocks: Sequence[int]) -> tuple[np.ndarray, float]:
    """Validation probabilities and accuracy of the linear head fitted on the training rows (C chosen by
    an inner split of them, so the validation rows stay unseen); an unreadable val input counts as wrong."""
    from transferkit.data.split import split_indices
    from transferkit.heads import parse_head, train_probe

    train_rows = np.flatnonzero(ok[:n_train])
    inner = split_indices([int(v) for v in y[train_rows]], val_fraction=0.2, test_fraction=0.0, seed=seed)
    fit_rows, c_rows = train_rows[inner["train"]], train_rows[inner["val"]]
    probe = train_probe(parse_head("linear"), values[fit_rows], y[fit_rows], values[c_rows], y[c_rows], n_classes,
                        class_weight=None, seed=seed, blocks=blocks)
    proba = probe.proba(values[n_train:])
    proba[~ok[n_train:]] = 1.0 / n_classes
    accuracy = float(np.mean(np.argmax(proba, axis=1) == y[n_train:]))
    return proba, accuracy


def _shortlist(data: LabelledData, train: Sequence[int], val: Sequence[int], specs: list[BackboneSpec],
               scratch: str | None, keep: int, store: FeatureCache | None, opts: ExtractOptions, seed: int,
               ) -> list[BackboneSpec]:
    """The `keep` candidates LogME ranks best on a subsample of the training split, plus from scratch."""
    from transferkit.ranking.rank_backbones import CandidateSpec, rank

    others = {CandidateSpec.of(s).name: s for s in specs if str(s) != scratch}
    table = rank(data.subset(list(train)), backbones=list(others.values()), metrics="logme", select="logme",
                 subsample=500, seed=seed, cache=store, options=opts)
    chosen = [others[name] for name in table.order("logme")[:keep]]
    return chosen + ([BackboneSpec("model", scratch)] if scratch else [])
