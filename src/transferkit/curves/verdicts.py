"""What a curve says: mean accuracy per (method, shots), and the two verdicts of each transfer method
against from scratch (how many labels it needs to match from scratch on all of them, and from
which shot count it stops paying)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from transferkit.curves.grid import ADAPTED, ALL, FINETUNED, METHODS, SCRATCH, TRANSFER

if TYPE_CHECKING:
    import pandas as pd

#: the accuracy gap, in points, within which two methods are said to match
MATCH_POINTS = 1.0


def mean_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (method, shots): mean, min and max accuracy over seeds, mean n_train, seeds run; shots in grid order."""
    if frame.empty:
        import pandas as pd

        return pd.DataFrame(columns=["method", "shots", "n_train", "mean", "min", "max", "std", "seeds"])
    grouped = frame.groupby(["method", "shots"], sort=False)
    table = grouped.agg(n_train=("n_train", "mean"), mean=("accuracy", "mean"), min=("accuracy", "min"),
                        max=("accuracy", "max"), std=("accuracy", "std"), seeds=("seed", "count")).reset_index()
    table["std"] = table["std"].fillna(0.0)
    table["_method"] = table["method"].map(lambda m: METHODS.index(m) if m in METHODS else len(METHODS))
    table["_order"] = table["shots"].map(shot_order)
    return (table.sort_values(["_method", "_order"], kind="stable").drop(columns=["_method", "_order"])
            .reset_index(drop=True))


def accuracy_grid(frame: pd.DataFrame) -> tuple[list[str], list[str], dict[tuple[str, str], Any]]:
    """`mean_table` as a grid: the methods run (in `METHODS` order), the shot counts (in grid order),
    and each (method, shots) row of the table (with `mean`, `min`, `max`, `seeds`, `n_train`)."""
    table = mean_table(frame)
    present = list(dict.fromkeys(table["method"]))
    methods = [m for m in METHODS if m in present] + [m for m in present if m not in METHODS]
    shots = sorted(set(table["shots"]), key=shot_order)
    return methods, shots, {(r.method, r.shots): r for r in table.itertuples()}


def shot_order(shots: str) -> float:
    return math.inf if shots == ALL else float(shots)


@dataclass(frozen=True)
class Verdict:
    """What one transfer method's curve says against from scratch."""

    method: str
    #: from scratch's mean accuracy with all labels (None when that point was not run)
    scratch_all: float | None
    #: the fewest labels per class at which this method's mean accuracy reaches scratch_all − 1 point
    matches_scratch_all_at: str | None
    #: the smallest shot count from which from scratch is within 1 point of it, or better, at every
    #: point measured (None: transfer pays at every point)
    stops_paying_at: str | None
    sentences: tuple[str, ...]


def summarize(frame: pd.DataFrame) -> list[Verdict]:
    """For each transfer method run ("transfer", "fine-tuned"), the two verdicts against from scratch."""
    table = mean_table(frame)
    means = {(r.method, r.shots): float(r.mean) for r in table.itertuples()}
    per_class = {(r.method, r.shots): float(r.n_train) for r in table.itertuples()}
    n_classes = max(int(frame.attrs.get("n_classes", 1)), 1)
    out: list[Verdict] = []
    scratch_all = means.get((SCRATCH, ALL))
    for method in (TRANSFER, ADAPTED, FINETUNED):
        shots = sorted({s for (m, s) in means if m == method}, key=shot_order)
        if not shots or not any((SCRATCH, s) in means for s in shots):
            continue
        label = {TRANSFER: "transfer (probe)", ADAPTED: "adapted transfer (probe, aligned to the target)",
                 FINETUNED: "fine-tuned (LP-FT)"}[method]
        sentences: list[str] = []
        matches: str | None = None
        if scratch_all is not None:
            n_all = per_class[(SCRATCH, ALL)] / n_classes
            matches = next((s for s in shots if means[(method, s)] >= scratch_all - MATCH_POINTS / 100 - 1e-9),
                           None)
            if matches is None:
                sentences.append(f"{label} does not reach from scratch's {scratch_all:.1%} with all ≈{n_all:.0f} "
                                 "labels per class at any point measured.")
            elif matches == ALL:
                sentences.append(f"{label} needs all ≈{n_all:.0f} labels per class to come within {MATCH_POINTS:g} "
                                 f"point of from scratch's {scratch_all:.1%} with all of them.")
            else:
                sentences.append(f"{label} matches from scratch on all ≈{n_all:.0f} labels per class "
                                 f"({scratch_all:.1%}, within {MATCH_POINTS:g} point) with {matches} per class "
                                 f"({means[(method, matches)]:.1%}).")
        common = [s for s in shots if (SCRATCH, s) in means]
        pays = [means[(method, s)] - means[(SCRATCH, s)] > MATCH_POINTS / 100 + 1e-9 for s in common]
        stops: str | None = None
        for i, s in enumerate(common):
            if not any(pays[i:]):
                stops = s
                break
        gaps = ", ".join(f"{s}: {100 * (means[(method, s)] - means[(SCRATCH, s)]):+.1f}" for s in common)
        misses = [s for s, paid in zip(common, pays, strict=True) if not paid]
        if stops is None and misses:
            sentences.append(f"{label} pays up to {common[-1]} per class, but not at every point: at "
                             f"{', '.join(misses)} per class from scratch is within {MATCH_POINTS:g} point of it, or "
                             f"better (points of accuracy over from scratch — {gaps}).")
        elif stops is None:
            sentences.append(f"{label} pays at every point measured, up to {common[-1]} per class "
                             f"(points of accuracy over from scratch — {gaps}).")
        elif stops == common[0] and all(means[(method, s)] < means[(SCRATCH, s)] - MATCH_POINTS / 100
                                        for s in common):
            sentences.append(f"{label} does not pay here: from scratch beats it at every point measured, from "
                             f"{common[0]} label(s) per class to {common[-1]} (points of accuracy over from scratch — "
                             f"{gaps}).")
        elif stops == common[0]:
            sentences.append(f"{label} does not pay here: from scratch is within {MATCH_POINTS:g} point of it, or "
                             f"better, at every point measured (points of accuracy over from scratch — {gaps}).")
        elif stops == ALL:
            sentences.append(f"{label} pays up to {common[-2]} labels per class; with all of them from scratch is "
                             f"within {MATCH_POINTS:g} point or better (points of accuracy over from scratch — "
                             f"{gaps}).")
        else:
            sentences.append(f"{label} stops paying at {stops} labels per class: from there on from scratch is within "
                             f"{MATCH_POINTS:g} point or better (points of accuracy over from scratch — {gaps}).")
        if method == ADAPTED:
            sentences.append(_adaptation_sentence(means, shots))
        out.append(Verdict(method, scratch_all, matches, stops, tuple(sentences)))
    return out


def _adaptation_sentence(means: dict[tuple[str, str], float], shots: list[str]) -> str:
    """Adapted against plain transfer: the mean gain over the shot counts both ran, and each."""
    common = [s for s in shots if (TRANSFER, s) in means]
    gains = [100 * (means[(ADAPTED, s)] - means[(TRANSFER, s)]) for s in common]
    if not gains:
        return "adapted transfer: no plain transfer point to compare with."
    each = ", ".join(f"{s}: {g:+.1f}" for s, g in zip(common, gains, strict=True))
    mean = sum(gains) / len(gains)
    if all(abs(g) <= MATCH_POINTS for g in gains):
        return (f"adaptation changes nothing that matters here: within {MATCH_POINTS:g} point of plain transfer at "
                f"every point (points over plain transfer — {each}).")
    if mean > 0:
        return (f"adaptation pays: {mean:+.1f} points over plain transfer on average (points over plain transfer — "
                f"{each}).")
    return f"adaptation costs {-mean:.1f} points on average here (points over plain transfer — {each})."
