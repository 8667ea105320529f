"""The data-efficiency curve: test accuracy against labels per class, transfer against from scratch.

Transfer learning claims that a pretrained model needs far fewer labels than training without it.
`curve(data)` measures that claim on the user's own data: for 1, 2, 5, 10, 20, 50 and all labelled
examples per class, several seeds each, it trains

- **transfer**: a linear probe on the modality's default pretrained backbone (EfficientNet-Lite0,
  all-MiniLM-L6-v2, GE2E), or the `backbone` given;
- **from scratch**: the same linear probe on the modality's from-scratch features
  (`transferkit.backbones.scratch`: HOG for images, MFCC statistics for audio, hashed n-grams for
  text), which learned nothing from other data;
- **fine-tuned** (only when asked, and while the budget lasts): LP-FT (`FinetunedClassifier`:
  the probe first, then the whole network) on the same pretrained backbone,

and scores every point on one fixed test split. One row per (method, shots, seed) comes back in a
`pandas.DataFrame`: accuracy, balanced accuracy, macro-F1, the number of training labels and the
seconds the point took.

How a point is made, and why:

- *One test split for every point*: stratified and seeded (`split_indices`), holding whole groups
  when the data names them, or the data's own `test` split when it has one. Every training subset
  is drawn from the rest (the *pool*), so no point ever trains on a test example.
- *Features are extracted once per backbone* for the pool and the test split together (and cached
  on disk); every probe point then fits a head on a subset of those rows, in well under a second.
- *Subsets are nested per seed*: each class's pool is shuffled once per seed and a point takes
  the first k, so the 5-shot subset holds the 2-shot one and the curve moves by added labels only.
- *The head's C is chosen inside the point*: from k ≥ 2 per class, 20% of the point's own subset
  (at least one example per class) is held out to choose C, and the head is then refitted on all
  k per class. A 1-shot point has nothing to hold out: it uses C = 1 (said in the notes).
- *Shot counts that do not fit the data* (the pool's per-class counts, after the test split): a
  shot count at or above the largest class takes every example of every class, so it is capped to
  the "all" point; one that is above the smallest class but below the largest would leave that
  class short, so the point is skipped for every method. Both are said in `frame.attrs["notes"]`.
- *Fine-tuning within a budget*: fine-tuned points run from the fewest labels up; one runs only
  when its estimated time (epochs × training examples ÷ images per second: 15 on a CPU and 400 on a
  GPU before the first point, then the rate measured on the points already run) fits in what is
  left of `budget` minutes; the others are skipped and said.
- *Ctrl-C keeps the finished points*: the frame of the points done so far is returned, with
  `frame.attrs["interrupted"] = True` (and a warning); `on_point` has seen each of them.

Same data, same arguments → the same curve (the accuracies; `seconds` is wall-clock).

`summarize(frame)` says how many labels per class transfer needs to match from scratch on all of
its labels, and from which shot count transfer stops paying. `save_curve` writes `curve.csv`,
`curve.png` and `curve.json` (the settings, notes and summary) atomically, into a folder that
`check_curve_folder` has allowed.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from transferkit.errors import BundleError, ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

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
#: the accuracy gap, in points, within which two methods are said to match
MATCH_POINTS = 1.0
#: minutes of fine-tuning `curve` may spend when fine-tuning is asked for and no budget is given
DEFAULT_FINETUNE_BUDGET = 10.0
#: training images per second assumed before the first fine-tuned point has been measured
#: (the figures `--strategy auto` uses: EfficientNet-Lite0, forward + backward)
FINETUNE_IMAGES_PER_SECOND = {"cpu": 15.0, "gpu": 400.0}
COLUMNS = ("method", "backbone", "shots", "seed", "n_train", "accuracy", "balanced_accuracy", "macro_f1", "seconds")

CURVE_CSV, CURVE_PNG, CURVE_JSON = "curve.csv", "curve.png", "curve.json"
CURVE_FILES = (CURVE_CSV, CURVE_PNG, CURVE_JSON)
CURVE_FORMAT = "transferkit.curve"
CURVE_FORMAT_VERSION = 1

#: called once with row None when the grid is planned (done = 0), then after every finished point
OnPoint = Callable[[dict[str, Any] | None, int, int], None]


# -- the grid ---------------------------------------------------------------------------------------


def parse_shots(shots: str | int | Sequence[int | str]) -> list[int | str]:
    """'1,5,10,all' (or a list) → [1, 5, 10, 'all'], sorted, duplicates dropped; 0 or less is an error."""
    parts: list[Any]
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


# -- running it -------------------------------------------------------------------------------------


@dataclass
class _Extracted:
    backbone: str
    values: np.ndarray  # [n_items, D]; rows of unreadable items are zeros
    ok: np.ndarray
    failed: dict[int, str]
    seconds: float
    cached: int
    precision: str
    #: adapted transfer's entry: the target inputs read (its own rows are the transfer's)
    target_read: int = 0


def _extract(name: str, weights: str | None, data: LabelledData, indices: list[int], *, seed: int, batch_size: int,
             precision: str, cache_dir: Any, progress: bool) -> _Extracted:
    from transferkit.backbones import create_backbone
    from transferkit.cache import resolve_cache
    from transferkit.features import ExtractOptions, extract_features

    kwargs: dict[str, Any] = {"seed": seed} if weights == "random" else {}
    backbone = create_backbone(name, weights=weights, **kwargs)
    if backbone.modality != data.modality:
        raise ConfigError(f"backbone '{name}' takes {backbone.modality} inputs; this is {data.modality} data")
    items = [data.items[i] for i in indices]
    feats = extract_features(backbone, items, options=ExtractOptions(batch_size=batch_size, precision=precision,
                                                                     progress=progress),
                             cache=resolve_cache(cache_dir), description=f"features ({backbone.name})")
    values = np.zeros((len(data.items), backbone.num_features), np.float32)
    ok = np.zeros(len(data.items), bool)
    rows = np.asarray(indices)[feats.ok]
    values[rows], ok[rows] = feats.values, True
    failed = {indices[i]: reason for i, reason in feats.failed.items()}
    return _Extracted(backbone.name, values, ok, failed, feats.seconds, feats.cached, feats.precision)


def _probe_point(feats: _Extracted, y: np.ndarray, fit_idx: list[int], val_idx: list[int], test: list[int],
                 n_classes: int, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Predicted class indices of the test split from a linear head fitted on this point's rows."""
    import torch
    from threadpoolctl import threadpool_limits

    from transferkit.heads import class_weights, fit_head, parse_head

    subset = fit_idx + val_idx
    weights = class_weights(y[subset], n_classes, "auto")
    # one BLAS thread: these problems are small, and on a busy 2-core machine OpenBLAS's own threads
    # made scikit-learn's L-BFGS 60x slower (7.5 s against 0.13 s for 200 x 1280 features)
    with threadpool_limits(limits=1, user_api="blas"):
        head, choice = fit_head(parse_head("linear"), feats.values[fit_idx], y[fit_idx], feats.values[val_idx],
                                y[val_idx], n_classes, weights=weights, seed=seed)
    with torch.no_grad():
        logits = head(torch.from_numpy(feats.values[test]))
    return logits.argmax(dim=1).numpy(), choice


def _metrics(classes: list[str], y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from transferkit.evaluate import classification_metrics

    m = classification_metrics([classes[i] for i in y_true], [classes[i] if i >= 0 else "" for i in y_pred], classes)
    return {"accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"], "macro_f1": m["macro_f1"]}


@dataclass
class _FinetuneBudget:
    """Which fine-tuned points fit in the budget: estimated from the rate measured so far."""

    minutes: float
    epochs: int
    device: str
    spent: float = 0.0
    images: float = 0.0  # training images × epochs done so far

    def rate(self) -> float:
        if self.images and self.spent:
            return self.images / self.spent
        return FINETUNE_IMAGES_PER_SECOND[self.device]

    def estimate(self, n_train: int) -> float:
        return self.epochs * n_train / self.rate()

    def fits(self, n_train: int) -> bool:
        return self.spent + self.estimate(n_train) <= self.minutes * 60.0

    def record(self, n_train: int, seconds: float) -> None:
        self.spent += seconds
        self.images += self.epochs * n_train


def curve(
    data: LabelledData | str | Path,
    *,
    shots: str | int | Sequence[int | str] = DEFAULT_SHOTS,
    seeds: int | Sequence[int] = 3,
    methods: Sequence[str] = DEFAULT_METHODS,
    test_fraction: float = 0.2,
    seed: int = 0,
    backbone: str | None = None,
    weights: str | None = None,
    scratch_backbone: str | None = None,
    modality: str | None = None,
    cache_dir: str | Path | bool | None = None,
    batch_size: int = 32,
    precision: str = "auto",
    budget: float | None = None,
    finetune_epochs: int = 10,
    on_point: OnPoint | None = None,
    progress: bool = False,
    adapt_to: Sequence[Any] | None = None,
    adapt_method: str = "auto",
) -> pd.DataFrame:
    """The data-efficiency curve of `data`: one row per (method, shots, seed); see the module docstring.

    `data`: a `LabelledData` (as `transferkit.data.load_labelled` reads it) or a folder / table path
    (read as `modality`, default image). `seed` fixes the test split; `seeds` (a count, or a list)
    the subsets drawn for each shot count. `methods`: any of "transfer", "from scratch",
    "fine-tuned". `budget`: minutes the fine-tuned points may take (default 10; only with
    "fine-tuned"). `backbone` / `weights`: the pretrained backbone (default: the modality's);
    `scratch_backbone`: the from-scratch features (default: the modality's, e.g. 'hog').
    `on_point(row, done, total)` is called once with row None when the grid is planned, then after
    every point. `frame.attrs` holds `notes`, `skipped` (unreadable inputs), `features`
    (extraction per backbone), `settings`, `n_test`, `pool_counts` and `interrupted`.

    `adapt_to`: unlabelled inputs of where the model is used (`fit --adapt-to`). Adds "adapted
    transfer": each transfer point's head, with the test inputs' features aligned (`adapt_method`, as
    `fit` fits it: auto aligns only a target a domain classifier tells apart) by the map fitted once
    from TARGET's features to the pool's (the training domain's inputs, their labels unused). The
    test split is DATA's: it shows what adaptation does where the model is scored — gains when the
    test split comes from the target's domain (DATA's own test split), costs when it does not.
    """
    import pandas as pd

    from transferkit.backbones.registry import PRETRAINED_BACKBONES
    from transferkit.backbones.scratch import SCRATCH_BACKBONES

    asked = parse_shots(shots)
    seed_list = parse_seeds(seeds)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"methods: {', '.join(map(repr, unknown)) or 'none given'}; choose from "
                          f"{', '.join(map(repr, METHODS))}")
    method_list = [m for m in METHODS if m in methods]
    if ADAPTED in method_list and adapt_to is None:
        raise ConfigError("the adapted transfer points need the target's inputs (adapt_to / --adapt-to)")
    if adapt_to is not None and ADAPTED not in method_list:
        if TRANSFER not in method_list:
            raise ConfigError("adapt_to adapts the transfer probe: keep the 'transfer' method")
        method_list = [m for m in METHODS if m in (*method_list, ADAPTED)]
    if budget is not None and (not isinstance(budget, int | float) or budget <= 0):
        raise ConfigError(f"budget must be a positive number of minutes; got {budget!r}")
    if budget is not None and FINETUNED not in method_list:
        raise ConfigError("budget applies to the fine-tuned points; add the 'fine-tuned' method (--finetune)")
    if not isinstance(finetune_epochs, int) or finetune_epochs < 1:
        raise ConfigError(f"finetune_epochs must be a positive integer; got {finetune_epochs!r}")
    dataset = _as_data(data, modality)
    if dataset.modality not in SCRATCH_BACKBONES:
        raise ConfigError(f"the curve compares one input column's transfer with its from-scratch features; this is "
                          f"{dataset.modality} data. Give one of --text-column, --image-column or --audio-column")
    dataset.validate_for_training()
    pretrained = backbone or PRETRAINED_BACKBONES[dataset.modality]
    scratch = scratch_backbone or SCRATCH_BACKBONES[dataset.modality]
    classes = dataset.classes
    y = np.array([classes.index(label) for label in dataset.labels])

    plan = make_plan(dataset, asked, test_fraction=test_fraction, seed=seed)
    wanted = {TRANSFER: (pretrained, weights), SCRATCH: (scratch, None)}
    extracted: dict[str, _Extracted] = {}
    everything = sorted(plan.test + plan.pool)
    for method in method_list:
        if method in wanted:
            name, w = wanted[method]
            extracted[method] = _extract(name, w, dataset, everything, seed=seed, batch_size=batch_size,
                                         precision=precision, cache_dir=cache_dir, progress=progress)
    if ADAPTED in method_list:
        extracted[ADAPTED], adapt_note = _adapted(extracted[TRANSFER], (pretrained, weights), plan.test, plan.pool,
                                                  adapt_to or [], adapt_method, seed=seed, batch_size=batch_size,
                                                  precision=precision, cache_dir=cache_dir, progress=progress)
    failed: dict[int, str] = {}
    for feats in extracted.values():
        failed.update(feats.failed)
    if failed:  # an input one backbone cannot read leaves every method: all points see the same data
        plan = make_plan(dataset, asked, test_fraction=test_fraction, seed=seed, exclude=frozenset(failed))
        plan.notes.append(f"{len(failed)} unreadable input(s) left out of every point (listed in attrs['skipped'])")
    if ADAPTED in method_list:
        plan.notes.append(adapt_note)
    if SCRATCH in method_list or TRANSFER in method_list:
        plan.notes.append(f"the head's C: chosen on {POINT_VAL_FRACTION:.0%} of each point's own labels (at least one "
                          "per class), then refitted on all of them; 1-label points have none to spare and use C = 1")

    grid = [(k, s, m) for k in plan.shots for s in seed_list for m in method_list]
    ft_budget = _FinetuneBudget(DEFAULT_FINETUNE_BUDGET if budget is None else float(budget), finetune_epochs,
                                _device_kind())
    ft_skipped: list[str] = []
    ft_small = False
    rows: list[dict[str, Any]] = []
    total = len(grid)
    interrupted = False
    if on_point is not None:
        on_point(None, 0, total)
    subsets = {s: draw_subsets(dataset.labels, plan.pool, plan.shots, s) for s in seed_list}
    test = plan.test
    names = {TRANSFER: extracted[TRANSFER].backbone if TRANSFER in extracted else pretrained,
             ADAPTED: extracted[ADAPTED].backbone if ADAPTED in extracted else pretrained,
             SCRATCH: extracted[SCRATCH].backbone if SCRATCH in extracted else scratch, FINETUNED: pretrained}
    done = 0
    try:
        for k, s, method in grid:
            subset = subsets[s][k]
            fit_idx, val_idx = point_validation(dataset.labels, subset, s)
            start = time.perf_counter()
            if method == FINETUNED:
                if k != ALL and int(k) < 2:  # the estimator's own rule: 2 examples of each class
                    ft_small = True
                    done += 1
                    if on_point is not None:
                        on_point(None, done, total)
                    continue
                if not ft_budget.fits(len(subset)):
                    ft_skipped.append(f"{k}/seed {s} (≈{ft_budget.estimate(len(subset)) / 60:.1f} min)")
                    done += 1
                    if on_point is not None:
                        on_point(None, done, total)
                    continue
                pred = _finetune_point(dataset, subset, test, classes, pretrained=pretrained, weights=weights, seed=s,
                                       epochs=finetune_epochs, batch_size=batch_size, precision=precision,
                                       cache_dir=cache_dir)
                ft_budget.record(len(subset), time.perf_counter() - start)
            else:
                pred, _ = _probe_point(extracted[method], y, fit_idx, val_idx, test, len(classes), s)
            row = {"method": method, "backbone": names[method], "shots": str(k), "seed": s, "n_train": len(subset),
                   **_metrics(classes, y[test], pred), "seconds": time.perf_counter() - start}
            rows.append(row)
            done += 1
            if on_point is not None:
                on_point(row, done, total)
    except KeyboardInterrupt:
        interrupted = True
        warnings.warn(f"curve interrupted: {len(rows)} of {total} points finished; returning those", stacklevel=2)
    if ft_small:
        plan.notes.append("fine-tuned: no 1-label point (fine-tuning takes at least 2 examples of each class)")
    if ft_skipped:
        plan.notes.append(f"fine-tuned points skipped, over the {ft_budget.minutes:g}-minute budget: "
                          + ", ".join(ft_skipped[:8]) + (" …" if len(ft_skipped) > 8 else "")
                          + " (raise --budget to run them)")
    frame = pd.DataFrame(rows, columns=list(COLUMNS)).astype({"seed": "int64", "n_train": "int64"})
    frame.attrs.update({
        "notes": plan.notes,
        "dropped_shots": plan.dropped,
        "skipped": {str(dataset.items[i]): reason for i, reason in sorted(failed.items())},
        "features": {(m if m != ADAPTED else "target"): {
            "backbone": e.backbone + (" (target)" if m == ADAPTED else ""), "seconds": round(e.seconds, 2),
            "cached": e.cached, "extracted": (e.target_read if m == ADAPTED else int(e.ok.sum())) - e.cached,
            "precision": e.precision} for m, e in extracted.items()},
        "settings": {"shots": [str(k) for k in asked], "seeds": seed_list, "methods": method_list,
                     "test_fraction": test_fraction, "seed": seed, "backbone": pretrained, "weights": weights,
                     "scratch_backbone": scratch, "budget_minutes": ft_budget.minutes if FINETUNED in method_list
                     else None, "finetune_epochs": finetune_epochs if FINETUNED in method_list else None,
                     "source": str(dataset.source), "modality": dataset.modality,
                     "adapt_to_inputs": None if adapt_to is None else len(adapt_to),
                     "adapt_method": adapt_method if adapt_to is not None else None},
        "n_test": len(test),
        "n_classes": len(classes),
        "pool_counts": plan.pool_counts,
        "interrupted": interrupted,
    })
    return frame


def _adapted(transfer: _Extracted, model: tuple[str, str | None], test: list[int], pool: list[int],
             target: Sequence[Any],
             method: str, *, seed: int, batch_size: int, precision: str, cache_dir: Any,
             progress: bool) -> tuple[_Extracted, str]:
    """The transfer features with the test rows aligned: the map from TARGET's features (extracted here) to
    the pool's, fitted once (`adapt.fit_alignment`; `auto` by `fit`'s rule). Returns them and a note."""
    from transferkit.adapt import fit_alignment, resolve_method
    from transferkit.backbones import create_backbone
    from transferkit.cache import resolve_cache
    from transferkit.estimators.probe import AUTO_MIN_DOMAIN_ACCURACY, _domain_separability
    from transferkit.features import ExtractOptions, extract_features

    if method in ("self-training", "none"):
        raise ConfigError(f"the curve aligns features (auto, standardize, coral); got --adapt-method {method}")
    backbone = create_backbone(model[0], weights=model[1], **({"seed": seed} if model[1] == "random" else {}))
    feats = extract_features(backbone, list(target), options=ExtractOptions(batch_size=batch_size, precision=precision,
                                                                          progress=progress),
                             cache=resolve_cache(cache_dir), description=f"target features ({backbone.name})")
    if not feats.ok.any():
        raise DataError(f"none of the {len(target)} target inputs could be read; first error: "
                        f"{next(iter(feats.failed.values()), 'none given')}")
    source = transfer.values[[i for i in pool if transfer.ok[i]]].astype(np.float64)
    tvalues = np.asarray(feats.values, np.float64)
    applied = resolve_method(method)
    why = f"{applied}, as asked"
    if method == "auto":
        separable = _domain_separability(source, tvalues, seed)
        why = (f"auto: a domain classifier tells the pool's features from TARGET's {separable:.0%} of the time "
               f"(aligned above {AUTO_MIN_DOMAIN_ACCURACY:.0%})")
        if separable <= AUTO_MIN_DOMAIN_ACCURACY:
            applied = "none"
    values = transfer.values.copy()
    if applied != "none":
        alignment = fit_alignment(source, tvalues, applied, blocks=backbone.feature_blocks())
        if alignment is not None:
            rows = [i for i in test if transfer.ok[i]]
            values[rows] = alignment.apply(values[rows])
    note = (f"adapted transfer: the transfer heads, the test inputs' features aligned to the pool's by the map fitted "
            f"on {int(feats.ok.sum())} target inputs ({len(feats.failed)} unreadable); {why} → "
            f"{'nothing aligned (the same points as transfer)' if applied == 'none' else applied}")
    return (_Extracted(transfer.backbone, values, transfer.ok, transfer.failed, feats.seconds, feats.cached,
                       transfer.precision, target_read=int(feats.ok.sum())), note)


def _as_data(data: LabelledData | str | Path, modality: str | None) -> LabelledData:
    from transferkit.data.dataset import LabelledData

    if isinstance(data, LabelledData):
        return data
    from transferkit.data import load_dataset

    return load_dataset(data, modality=modality or "image")


def _device_kind() -> str:
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def _finetune_point(data: LabelledData, subset: list[int], test: list[int], classes: list[str], *, pretrained: str,
                    weights: str | None, seed: int, epochs: int, batch_size: int, precision: str,
                    cache_dir: Any) -> np.ndarray:
    """LP-FT on the point's own labels (no validation held out: every method sees the same k per class;
    the last epoch is kept), then the test split's predicted class indices."""
    from transferkit.estimators.finetuned import FinetunedClassifier
    from transferkit.finetune.config import FinetuneConfig
    from transferkit.finetune.trainer import quiet_lightning

    train = data.subset(subset)
    clf = FinetunedClassifier(pretrained, weights=weights, seed=seed, batch_size=min(batch_size, 16),
                              precision=precision, training=FinetuneConfig(epochs=epochs), progress=False,
                              cache_dir=cache_dir)
    with quiet_lightning():
        clf.fit(train)
    feats = clf.features([data.items[i] for i in test], cache=False)
    index = {c: i for i, c in enumerate(classes)}
    predicted = np.full(len(test), -1, np.int64)  # an input unreadable now is scored as wrong
    labels = clf.classes_[np.argmax(clf.proba_from_features(feats.values), axis=1)]
    predicted[feats.ok] = [index[str(c)] for c in labels]
    return predicted


# -- what it says -----------------------------------------------------------------------------------


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
    table["_order"] = table["shots"].map(_shot_order)
    return (table.sort_values(["_method", "_order"], kind="stable").drop(columns=["_method", "_order"])
            .reset_index(drop=True))


def accuracy_grid(frame: pd.DataFrame) -> tuple[list[str], list[str], dict[tuple[str, str], Any]]:
    """`mean_table` as a grid: the methods run (in `METHODS` order), the shot counts (in grid order),
    and each (method, shots) row of the table (with `mean`, `min`, `max`, `seeds`, `n_train`)."""
    table = mean_table(frame)
    present = list(dict.fromkeys(table["method"]))
    methods = [m for m in METHODS if m in present] + [m for m in present if m not in METHODS]
    shots = sorted(set(table["shots"]), key=_shot_order)
    return methods, shots, {(r.method, r.shots): r for r in table.itertuples()}


def _shot_order(shots: str) -> float:
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
        shots = sorted({s for (m, s) in means if m == method}, key=_shot_order)
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
    """Adapted against plain transfer: the mean gain over the shot counts both ran, and its range."""
    common = [s for s in shots if (TRANSFER, s) in means]
    gains = [100 * (means[(ADAPTED, s)] - means[(TRANSFER, s)]) for s in common]
    if not gains:
        return "adapted transfer: no plain transfer point to compare with."
    each = ", ".join(f"{s}: {g:+.1f}" for s, g in zip(common, gains, strict=True))
    mean = float(np.mean(gains))
    if all(abs(g) <= MATCH_POINTS for g in gains):
        return (f"adaptation changes nothing that matters here: within {MATCH_POINTS:g} point of plain transfer at "
                f"every point (points over plain transfer — {each}).")
    if mean > 0:
        return (f"adaptation pays: {mean:+.1f} points over plain transfer on average (points over plain transfer — "
                f"{each}).")
    return f"adaptation costs {-mean:.1f} points on average here (points over plain transfer — {each})."


# -- writing it -------------------------------------------------------------------------------------


def check_curve_folder(folder: str | Path, *, overwrite: bool = False) -> None:
    """Refuse, before any work, a folder the curve files may not be written into.

    Allowed: a new or empty folder; a folder holding only a curve transferkit wrote (with
    `overwrite`); a model folder made by `transferkit fit` (the curve files are then recorded in
    its manifest, so that its report shows them and `fit --overwrite` replaces them). Anything
    else — a user's folder — is refused, naming what is in it.
    """
    from transferkit.bundle import is_bundle

    p = Path(folder)
    if p.exists() and not p.is_dir():
        raise BundleError(f"--out '{p}' is a file; give a folder for curve.png and curve.csv")
    if not p.is_dir():
        return
    entries = sorted(e.name for e in p.iterdir())
    if not entries:
        return
    ours = [name for name in CURVE_FILES if (p / name).exists()]
    if is_bundle(p):
        if ours and not overwrite and _curve_marker(p) is not None:
            raise BundleError(f"--out '{p}' already holds a curve of this model; pass --overwrite to replace it")
        if ours and _curve_marker(p) is None:
            raise BundleError(f"--out '{p}' holds '{ours[0]}', which transferkit did not write there; move it, or "
                              "choose another folder")
        return
    if _curve_marker(p) is None:
        raise BundleError(f"--out '{p}' is a non-empty folder that transferkit did not write (it holds "
                          f"'{entries[0]}'); refusing to write into it. Choose a new or empty folder, or a model "
                          "folder made by `transferkit fit` (its report then shows the curve)")
    foreign = [name for name in entries if name not in CURVE_FILES and not _is_temporary(name)]
    if foreign:
        raise BundleError(f"--out '{p}' holds a curve but also '{foreign[0]}', which transferkit did not write; "
                          "move it out, or choose another folder")
    if not overwrite:
        raise BundleError(f"--out '{p}' already holds a curve; pass --overwrite to replace it, or choose another "
                          "folder")


def mark_curve_folder(folder: str | Path) -> None:
    """Claim `folder` for the curve before its first point is written (a killed run then leaves a folder
    that `check_curve_folder` recognises as a curve): curve.json with the marker, or, in a model
    folder, the curve files recorded in the bundle's manifest."""
    from transferkit.bundle import add_files, is_bundle

    p = Path(folder)
    p.mkdir(parents=True, exist_ok=True)
    if is_bundle(p):
        add_files(p, CURVE_FILES)
    if _curve_marker(p) is None:
        record = {"format": CURVE_FORMAT, "format_version": CURVE_FORMAT_VERSION, "files": list(CURVE_FILES),
                  "status": "running"}
        _write_atomic(p / CURVE_JSON, lambda fh: fh.write(json.dumps(record, indent=2) + "\n"))


def _is_temporary(name: str) -> bool:
    return name.startswith(".curve.") and name.endswith(".tmp")


def _curve_marker(folder: Path) -> dict[str, Any] | None:
    path = folder / CURVE_JSON
    if not path.is_file() or path.is_symlink():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) and info.get("format") == CURVE_FORMAT else None


def _write_atomic(path: Path, write: Callable[[Any], None], binary: bool = False) -> None:
    """Write through a temporary file in the same folder, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """`frame` as CSV, atomically (a killed run leaves the previous file whole)."""
    target = Path(path)
    _write_atomic(target, lambda fh: frame.to_csv(fh, index=False))
    return target


def read_curve(path: str | Path) -> pd.DataFrame:
    """A `curve.csv` back as the frame `curve` returned (same columns, types and values)."""
    import pandas as pd

    frame = pd.read_csv(path, dtype={"method": str, "backbone": str, "shots": str}, float_precision="round_trip",
                        keep_default_na=False)
    return frame.astype({"seed": "int64", "n_train": "int64"})


def save_curve(frame: pd.DataFrame, folder: str | Path, *, title: str | None = None) -> dict[str, Path]:
    """Write curve.csv, curve.png and curve.json into `folder` (checked with `check_curve_folder` first);
    in a model folder, the bundle's manifest records them."""
    from transferkit.bundle import add_files, is_bundle

    p = Path(folder)
    p.mkdir(parents=True, exist_ok=True)
    written = {"csv": write_csv(frame, p / CURVE_CSV), "png": plot_curve(frame, p / CURVE_PNG, title=title)}
    verdicts = summarize(frame)
    record = {"format": CURVE_FORMAT, "format_version": CURVE_FORMAT_VERSION, "files": list(CURVE_FILES),
              "status": "interrupted" if frame.attrs.get("interrupted") else "complete",
              **{k: v for k, v in frame.attrs.items()},
              "summary": [{"method": v.method, "scratch_all": v.scratch_all,
                           "matches_scratch_all_at": v.matches_scratch_all_at, "stops_paying_at": v.stops_paying_at,
                           "sentences": list(v.sentences)} for v in verdicts]}
    _write_atomic(p / CURVE_JSON, lambda fh: fh.write(json.dumps(record, indent=2, default=str) + "\n"))
    written["json"] = p / CURVE_JSON
    if is_bundle(p):
        add_files(p, CURVE_FILES)
    return written


# -- the picture ------------------------------------------------------------------------------------

_COLOURS = {TRANSFER: "#1f77b4", ADAPTED: "#d62728", SCRATCH: "#7f7f7f", FINETUNED: "#2ca02c"}
_LABELS = {TRANSFER: "transfer: linear probe on {backbone}", SCRATCH: "from scratch: linear probe on {backbone}",
           FINETUNED: "transfer: fine-tuned {backbone} (LP-FT)",
           ADAPTED: "adapted transfer: the probe on {backbone}, test features aligned to the target"}


def plot_curve(frame: pd.DataFrame, path: str | Path, *, title: str | None = None) -> Path:
    """curve.png: mean test accuracy against labels per class (log x-axis), one line per method, a band
    from the lowest to the highest seed, and a dashed line at from scratch with all labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator, PercentFormatter

    table = mean_table(frame)
    n_classes = max(int(frame.attrs.get("n_classes", 1)), 1)
    fig = Figure(figsize=(7.2, 4.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    numeric = sorted({float(s) for s in table["shots"] if s != ALL})
    all_rows = table[table["shots"] == ALL]
    all_x = float(all_rows["n_train"].mean()) / n_classes if len(all_rows) else None
    if all_x is not None and numeric and all_x <= numeric[-1] * 1.2:
        all_x = numeric[-1] * 1.6  # keep 'all' apart from the largest shot count it would sit on
    xs_of = {s: float(s) for s in table["shots"] if s != ALL}
    if all_x is not None:
        xs_of[ALL] = all_x
    seeds = int(table["seeds"].max()) if len(table) else 0
    for method in (m for m in METHODS if m in set(table["method"])):
        part = table[table["method"] == method]
        x = [xs_of[s] for s in part["shots"]]
        backbone = str(frame.loc[frame["method"] == method, "backbone"].iloc[0])
        ax.plot(x, part["mean"], marker="o", color=_COLOURS[method], label=_LABELS[method].format(backbone=backbone))
        if seeds > 1:
            ax.fill_between(x, part["min"], part["max"], color=_COLOURS[method], alpha=0.18, linewidth=0)
    scratch_all = table[(table["method"] == SCRATCH) & (table["shots"] == ALL)]
    if len(scratch_all):
        level = float(scratch_all["mean"].iloc[0])
        ax.axhline(level, color=_COLOURS[SCRATCH], linestyle="--", linewidth=1,
                   label=f"from scratch, all labels ({level:.1%})")
    ax.set_xscale("log")
    ticks = sorted(xs_of.items(), key=lambda kv: kv[1])
    ax.xaxis.set_major_locator(FixedLocator([x for _, x in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    all_per_class = float(all_rows["n_train"].mean()) / n_classes if len(all_rows) else 0.0
    ax.set_xticklabels([f"all\n(≈{all_per_class:.0f})" if s == ALL else s for s, _ in ticks])
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("labelled examples per class (log scale)")
    ax.set_ylabel(f"test accuracy ({frame.attrs.get('n_test', '?')} examples)")
    band = f"; band: lowest to highest of {seeds} seeds" if seeds > 1 else ""
    ax.set_title(title or "data-efficiency curve", fontsize=11)
    ax.text(0.99, 0.02, f"line: mean over seeds{band}", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=8, color="#555555")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, bbox_to_anchor=(1.0, 0.07))
    target = Path(path)
    _write_atomic(target, lambda fh: fig.savefig(fh, format="png"), binary=True)
    return target
