"""The curve's grid: which shot counts and seeds run, the fixed test split and the pool every point
draws its nested training subsets from, and the part of a point's own subset that chooses the head's C."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from transferkit.errors import ConfigError, DataError

if TYPE_CHECKING:
    from transferkit.data.dataset import LabelledData

TRANSFER, SCRATCH, FINETUNED = "transfer", "from scratch", "fine-tuned"
#: the transfer probe with the test inputs' features aligned to the training domain (`adapt_to`)
ADAPTED = "adapted transfer"
METHODS = (TRANSFER, ADAPTED, SCRATCH, FINETUNED)
DEFAULT_METHODS = (TRANSFER, SCRATCH)
DEFAULT_SHOTS: tuple[int | str, ...] = (1, 2, 5, 10, 20, 50, "all")
ALL = "all"
#: the fraction of each point's own subset held out to choose the head's C (k ≥ 2 per class)
POINT_VAL_FRACTION = 0.2


def parse_shots(shots: str | int | Sequence[int | str]) -> list[int | str]:
    """'1,5,10,all' (or a list) → [1, 5, 10, 'all'], sorted, duplicates dropped; 0 or less is an error."""
    parts: list[int | str | float]  # what a caller passed: checked below
    if isinstance(shots, str):
        parts = [p.strip() for p in shots.split(",") if p.strip()]
    elif isinstance(shots, int):
        parts = [shots]
    else:
        parts = list(shots)
    if not parts:
        raise ConfigError(f"shots: give labels per class as numbers ≥ 1 or 'all', such as '1,5,10,all'; got {shots!r}")
    out: set[int] = set()
    want_all = False
    for part in parts:
        if isinstance(part, str) and part.strip().lower() == ALL:
            want_all = True
            continue
        try:
            if isinstance(part, bool) or (isinstance(part, float) and not part.is_integer()):
                raise ValueError
            value = int(part)
        except (TypeError, ValueError):
            raise ConfigError(f"shots: {part!r} is not a number of labels per class; give whole numbers ≥ 1 or "
                              f"'all', such as '1,5,10,all'") from None
        if value < 1:
            raise ConfigError(f"shots: {value} labels per class cannot train anything; give whole numbers ≥ 1 or "
                              "'all', such as '1,5,10,all'")
        out.add(value)
    return [*sorted(out), *([ALL] if want_all else [])]


def parse_seeds(seeds: int | Sequence[int]) -> list[int]:
    """3 → [0, 1, 2]; a list of seeds is taken as is (each a non-negative integer, no repeats)."""
    if isinstance(seeds, bool):
        raise ConfigError(f"seeds must be a number of seeds (≥ 1) or a list of seeds; got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"seeds must be at least 1; got {seeds}")
        return list(range(seeds))
    values = list(seeds)
    if not values or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in values):
        raise ConfigError(f"seeds must be non-negative integers; got {values!r}")
    if len(set(values)) != len(values):
        raise ConfigError(f"seeds repeat: {values!r}; give each seed once")
    return values


@dataclass
class Plan:
    """What a curve will run: the test split, the pool each point draws from, the shots kept, and why."""

    test: list[int]
    pool: list[int]
    shots: list[int | str]
    #: class → pool examples
    pool_counts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    #: shot count asked → why it is not run (or what it became)
    dropped: dict[str, str] = field(default_factory=dict)


def plan_shots(asked: Sequence[int | str], pool_counts: dict[str, int]) -> tuple[list[int | str], list[str],
                                                                                   dict[str, str]]:
    """The shot counts the pool allows: at or above the largest class → capped to 'all'; above the
    smallest but below the largest → skipped. Returns (kept, notes, dropped)."""
    smallest = min(pool_counts, key=lambda c: (pool_counts[c], c))
    largest = max(pool_counts.values())
    kept: list[int | str] = []
    notes: list[str] = []
    dropped: dict[str, str] = {}
    for k in asked:
        if k == ALL:
            kept.append(k)
        elif isinstance(k, int) and k >= largest:
            dropped[str(k)] = "capped to 'all'"
            notes.append(f"{k} labels per class: no class has more than {largest} to train on (after the test "
                         "split), so this is the 'all' point: capped to 'all'")
            kept.append(ALL)
        elif isinstance(k, int) and k > pool_counts[smallest]:
            short = sorted(c for c, n in pool_counts.items() if n < k)
            dropped[str(k)] = "skipped"
            listed = ", ".join(f"'{c}' ({pool_counts[c]})" for c in short[:5]) + (" …" if len(short) > 5 else "")
            notes.append(f"{k} labels per class: skipped for every method — {len(short)} class(es) have fewer "
                         f"examples to train on (after the test split): {listed}")
        else:
            kept.append(k)
    kept = list(dict.fromkeys(kept))
    return [k for k in kept if k != ALL] + ([ALL] if ALL in kept else []), notes, dropped


def make_plan(data: LabelledData, shots: Sequence[int | str], *, test_fraction: float, seed: int,
              exclude: frozenset[int] = frozenset()) -> Plan:
    """The fixed test split (the data's own, or a seeded stratified / group split) and the pool."""
    from transferkit.data.split import split_indices

    notes: list[str] = []
    has_test = data.splits is not None and any(s.strip().lower() == "test" for s in data.splits)
    if has_test:
        splits = split_indices(data.labels, val_fraction=0.0, test_fraction=0.0, seed=seed, splits=data.splits,
                               groups=data.groups)
        test = splits["test"]
        pool = sorted(splits["train"] + splits["val"])
        notes.append(f"test split: the data's own ({len(test)} examples); every point trains on the data's "
                     "train and val examples")
    else:
        if not 0 < test_fraction < 1:
            raise ConfigError(f"test_fraction must be in (0, 1) when the data has no test split; got {test_fraction}")
        splits = split_indices(data.labels, val_fraction=0.0, test_fraction=test_fraction, seed=seed,
                               groups=data.groups)
        test, pool = splits["test"], splits["train"]
        how = "whole groups held out" if data.groups is not None else "stratified"
        notes.append(f"test split: {len(test)} examples ({test_fraction:.0%}, {how}, seed {seed}), the same for every "
                     "point; no point trains on them")
    test = [i for i in test if i not in exclude]
    pool = [i for i in pool if i not in exclude]
    counts: dict[str, int] = {c: 0 for c in data.classes}
    for i in pool:
        counts[data.labels[i]] += 1
    empty = sorted(c for c, n in counts.items() if n == 0)
    if empty:
        raise DataError(f"{data.source}: class(es) {', '.join(map(repr, empty[:5]))} have no examples left to train on "
                        "after the test split; add examples, or give a test split that leaves some")
    test_classes = {data.labels[i] for i in test}
    if not test:
        raise DataError(f"{data.source}: the test split is empty; the curve needs examples no point trains on")
    missing = sorted(set(counts) - test_classes)
    if missing:
        notes.append(f"class(es) {', '.join(map(repr, missing[:5]))} have no test example: they are trained on but "
                     "not scored")
    kept, shot_notes, dropped = plan_shots(shots, counts)
    if not kept:
        raise DataError(f"{data.source}: none of the shot counts asked ({', '.join(map(str, shots))}) fits the data: "
                        f"{'; '.join(shot_notes)}")
    return Plan(test=sorted(test), pool=sorted(pool), shots=kept, pool_counts=counts, notes=notes + shot_notes,
                dropped=dropped)


def draw_subsets(labels: Sequence[str], pool: Sequence[int], shots: Sequence[int | str], seed: int
                 ) -> dict[int | str, list[int]]:
    """For one seed, each shot count's training indices: the first k of each class's pool shuffled once
    (so subsets are nested); 'all' is the whole pool."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for i in pool:
        by_class.setdefault(labels[i], []).append(i)
    order = {c: [int(i) for i in rng.permutation(by_class[c])] for c in sorted(by_class)}
    out: dict[int | str, list[int]] = {}
    for k in shots:
        out[k] = sorted(pool) if k == ALL else sorted(i for c in order for i in order[c][: int(k)])
    return out


def point_validation(labels: Sequence[str], subset: Sequence[int], seed: int) -> tuple[list[int], list[int]]:
    """(fit, held out to choose C) within a point's own subset: none held out with 1 example per class."""
    from transferkit.data.split import split_indices

    sub_labels = [labels[i] for i in subset]
    counts: dict[str, int] = {}
    for label in sub_labels:
        counts[label] = counts.get(label, 0) + 1
    if min(counts.values()) < 2:
        return list(subset), []
    parts = split_indices(sub_labels, val_fraction=POINT_VAL_FRACTION, test_fraction=0.0, seed=seed)
    return [subset[i] for i in parts["train"]], [subset[i] for i in parts["val"]]
