"""`curve(data)`: the data-efficiency curve, every (shots, seed, method) point of the grid run and
scored on the one test split (see the package docstring)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from transferkit.backbones.spec import BackboneSpec, parse_backbone
from transferkit.curves.grid import (
    ADAPTED,
    ALL,
    DEFAULT_METHODS,
    DEFAULT_SHOTS,
    FINETUNED,
    METHODS,
    POINT_VAL_FRACTION,
    SCRATCH,
    TRANSFER,
    Plan,
    draw_subsets,
    make_plan,
    parse_seeds,
    parse_shots,
    point_validation,
)
from transferkit.curves.points import (
    DEFAULT_FINETUNE_BUDGET,
    Extracted,
    FinetuneBudget,
    PointMetrics,
    adapted,
    device_kind,
    extract,
    finetune_point,
    metrics,
    probe_point,
)
from transferkit.errors import ConfigError
from transferkit.params import ADAPT_METHOD, BATCH_SIZE, CACHE_DIR, ENGINE, PRECISION, SEED, WEIGHTS

if TYPE_CHECKING:
    import pandas as pd

    from transferkit.cache import FeatureCache
    from transferkit.data.dataset import LabelledData

COLUMNS = ("method", "backbone", "shots", "seed", "n_train", "accuracy", "balanced_accuracy", "macro_f1", "seconds")


class CurveRow(PointMetrics):
    """One point of the curve (`COLUMNS`, in order): the method, its backbone, shots per class ("all" or a
    number), the seed, training examples, the test metrics and the seconds the point took."""

    method: str
    backbone: str
    shots: str
    seed: int
    n_train: int
    seconds: float


#: called once with row None when the grid is planned (done = 0), then after every finished point
OnPoint = Callable[[CurveRow | None, int, int], None]


def curve(
    data: LabelledData | str | Path,
    *,
    shots: str | int | Sequence[int | str] = DEFAULT_SHOTS,
    seeds: int | Sequence[int] = 3,
    methods: Sequence[str] = DEFAULT_METHODS,
    test_fraction: float = 0.2,
    seed: int = SEED.default,
    backbone: str | BackboneSpec | None = None,
    weights: str | None = WEIGHTS.default,
    scratch_backbone: str | BackboneSpec | None = None,
    modality: str | None = None,
    cache_dir: str | Path | bool | None = CACHE_DIR.default,
    batch_size: int = BATCH_SIZE.default,
    precision: str = PRECISION.default,
    budget: float | None = None,
    finetune_epochs: int = 10,
    on_point: OnPoint | None = None,
    progress: bool = False,
    adapt_to: Sequence[object] | None = None,
    adapt_method: str = ADAPT_METHOD.default,
    engine: str = ENGINE.default,
) -> pd.DataFrame:
    """The data-efficiency curve of `data`: one row per (method, shots, seed); see the package docstring.

    `data`: a `LabelledData` (as `transferkit.data.load_labelled` reads it) or a folder / table path
    (read as `modality`, default image). `seed` fixes the test split; `seeds` (a count, or a list)
    the subsets drawn for each shot count. `methods`: any of "transfer", "from scratch",
    "fine-tuned". `budget`: minutes the fine-tuned points may take (default 10; only with
    "fine-tuned"). `backbone` / `weights`: the pretrained backbone (default: the modality's);
    `scratch_backbone`: the from-scratch features (default: the modality's, e.g. 'hog').
    `on_point(row, done, total)` is called once with row None when the grid is planned, then after
    every point. `frame.attrs` holds `notes`, `skipped` (unreadable inputs), `features`
    (extraction per backbone), `settings`, `n_test`, `pool_counts` and `interrupted`.

    `engine`: how the pretrained backbone's features are extracted (as `fit --engine`; the from-scratch
    features run as they ship).

    `adapt_to`: unlabelled inputs of where the model is used (`fit --adapt-to`). Adds "adapted
    transfer": each transfer point's head, with the test inputs' features aligned (`adapt_method`, as
    `fit` fits it: auto shrinks the shift toward none by James-Stein) by the map fitted once
    from TARGET's features to the pool's (the training domain's inputs, their labels unused). The
    test split is DATA's: it shows what adaptation does where the model is scored — gains when the
    test split comes from the target's domain (DATA's own test split), costs when it does not.
    """
    import pandas as pd

    from transferkit.backbones.registry import PRETRAINED_BACKBONES
    from transferkit.backbones.scratch import SCRATCH_BACKBONES

    asked, seed_list, method_list = _check_arguments(shots, seeds, methods, budget, finetune_epochs, adapt_to)
    dataset = _as_data(data, modality)
    if dataset.modality not in SCRATCH_BACKBONES:
        raise ConfigError(f"the curve compares one input column's transfer with its from-scratch features; this is "
                          f"{dataset.modality} data. Give one of --text-column, --image-column or --audio-column")
    dataset.validate_for_training()
    # the Python API's boundary: a name's text is parsed here, once (the CLI hands the spec it parsed)
    pretrained_spec = _spec(backbone) or BackboneSpec("model", PRETRAINED_BACKBONES[dataset.modality])
    scratch_spec = _spec(scratch_backbone) or BackboneSpec("model", SCRATCH_BACKBONES[dataset.modality])
    pretrained, scratch = str(pretrained_spec), str(scratch_spec)

    plan = make_plan(dataset, asked, test_fraction=test_fraction, seed=seed)
    wanted = {TRANSFER: (pretrained_spec, weights), SCRATCH: (scratch_spec, None)}
    extracted = {method: extract(*wanted[method], dataset, sorted(plan.test + plan.pool), seed=seed,
                                 batch_size=batch_size, precision=precision, cache_dir=cache_dir, progress=progress,
                                 engine=engine if method == TRANSFER else ENGINE.default)
                 for method in method_list if method in wanted}
    adapt_note = None
    if ADAPTED in method_list:
        extracted[ADAPTED], adapt_note = adapted(extracted[TRANSFER], (pretrained_spec, weights), plan.test, plan.pool,
                                                 adapt_to or [], adapt_method, seed=seed, batch_size=batch_size,
                                                 precision=precision, cache_dir=cache_dir, progress=progress,
                                                 engine=engine)
    failed = {i: reason for feats in extracted.values() for i, reason in feats.failed.items()}
    if failed:  # an input one backbone cannot read leaves every method: all points see the same data
        plan = make_plan(dataset, asked, test_fraction=test_fraction, seed=seed, exclude=frozenset(failed))
        plan.notes.append(f"{len(failed)} unreadable input(s) left out of every point (listed in attrs['skipped'])")
    if adapt_note is not None:
        plan.notes.append(adapt_note)
    if SCRATCH in method_list or TRANSFER in method_list:
        plan.notes.append(f"the head's C: chosen on {POINT_VAL_FRACTION:.0%} of each point's own labels (at least one "
                          "per class), then refitted on all of them; 1-label points have none to spare and use C = 1")

    runner = _Points(dataset, plan, extracted, pretrained=pretrained_spec, weights=weights,
                     names={TRANSFER: extracted[TRANSFER].backbone if TRANSFER in extracted else pretrained,
                            ADAPTED: extracted[ADAPTED].backbone if ADAPTED in extracted else pretrained,
                            SCRATCH: extracted[SCRATCH].backbone if SCRATCH in extracted else scratch,
                            FINETUNED: pretrained},
                     budget=FinetuneBudget(DEFAULT_FINETUNE_BUDGET if budget is None else float(budget),
                                           finetune_epochs, device_kind()),
                     batch_size=batch_size, precision=precision, cache_dir=cache_dir, on_point=on_point)
    runner.run([(k, s, m) for k in plan.shots for s in seed_list for m in method_list], seed_list)
    frame = pd.DataFrame(runner.rows, columns=list(COLUMNS)).astype({"seed": "int64", "n_train": "int64"})
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
                     "scratch_backbone": scratch, "budget_minutes": runner.budget.minutes if FINETUNED in method_list
                     else None, "finetune_epochs": finetune_epochs if FINETUNED in method_list else None,
                     "source": str(dataset.source), "modality": dataset.modality,
                     "adapt_to_inputs": None if adapt_to is None else len(adapt_to),
                     "adapt_method": adapt_method if adapt_to is not None else None},
        "n_test": len(plan.test),
        "n_classes": len(dataset.classes),
        "pool_counts": plan.pool_counts,
        "interrupted": runner.interrupted,
    })
    return frame


def _spec(backbone: str | BackboneSpec | None) -> BackboneSpec | None:
    return parse_backbone(backbone) if isinstance(backbone, str) else backbone


def _check_arguments(shots: str | int | Sequence[int | str], seeds: int | Sequence[int], methods: Sequence[str],
                     budget: float | None, finetune_epochs: int,
                     adapt_to: Sequence[object] | None) -> tuple[list[int | str], list[int], list[str]]:
    """(shot counts, seeds, methods in `METHODS` order), or a `ConfigError` naming the bad argument."""
    asked = parse_shots(shots)
    seed_list = parse_seeds(seeds)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"methods: {', '.join(map(repr, unknown)) or 'none given'}; choose from "
                          f"{', '.join(map(repr, METHODS))}")
    method_list = [m for m in METHODS if m in methods]
    if ADAPTED in method_list and adapt_to is None:
        raise ConfigError("the adapted transfer points need the target's inputs (adapt_to / --adapt-to)")
    if ADAPTED in method_list and TRANSFER not in method_list:
        raise ConfigError("the adapted transfer points adapt the transfer probe's: keep the 'transfer' method")
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
    return asked, seed_list, method_list


@dataclass
class _Points:
    """Runs the grid's points in order, one row each; Ctrl-C keeps the rows finished."""

    data: LabelledData
    plan: Plan
    extracted: dict[str, Extracted]
    pretrained: BackboneSpec
    weights: str | None
    names: dict[str, str]
    budget: FinetuneBudget
    batch_size: int
    precision: str
    cache_dir: FeatureCache | str | Path | bool | None
    on_point: OnPoint | None
    rows: list[CurveRow] = field(default_factory=list)
    interrupted: bool = False
    _done: int = 0
    _total: int = 0
    _ft_small: bool = False
    _ft_skipped: list[str] = field(default_factory=list)
    _y: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        index = {c: i for i, c in enumerate(self.data.classes)}
        self._y = np.array([index[label] for label in self.data.labels])

    def run(self, grid: list[tuple[int | str, int, str]], seed_list: list[int]) -> None:
        self._total = len(grid)
        self._report(None, counted=False)
        subsets = {s: draw_subsets(self.data.labels, self.plan.pool, self.plan.shots, s) for s in seed_list}
        try:
            for k, s, method in grid:
                self._report(self._point(k, s, method, subsets[s][k]))
        except KeyboardInterrupt:
            self.interrupted = True
            warnings.warn(f"curve interrupted: {len(self.rows)} of {self._total} points finished; returning those",
                          stacklevel=3)
        if self._ft_small:
            self.plan.notes.append("fine-tuned: no 1-label point (fine-tuning takes at least 2 examples of each class)")
        if self._ft_skipped:
            self.plan.notes.append(f"fine-tuned points skipped, over the {self.budget.minutes:g}-minute budget: "
                                   + ", ".join(self._ft_skipped[:8]) + (" …" if len(self._ft_skipped) > 8 else "")
                                   + " (raise --budget to run them)")

    def _report(self, row: CurveRow | None, counted: bool = True) -> None:
        if row is not None:
            self.rows.append(row)
        self._done += counted
        if self.on_point is not None:
            self.on_point(row, self._done, self._total)

    def _point(self, k: int | str, s: int, method: str, subset: list[int]) -> CurveRow | None:
        """The row of one point, or None for a fine-tuned point that is not run (said in the notes)."""
        classes, test = self.data.classes, self.plan.test
        fit_idx, val_idx = point_validation(self.data.labels, subset, s)
        start = time.perf_counter()
        if method == FINETUNED:
            if k != ALL and int(k) < 2:  # the estimator's own rule: 2 examples of each class
                self._ft_small = True
                return None
            if not self.budget.fits(len(subset)):
                self._ft_skipped.append(f"{k}/seed {s} (≈{self.budget.estimate(len(subset)) / 60:.1f} min)")
                return None
            pred = finetune_point(self.data, subset, test, classes, pretrained=self.pretrained, weights=self.weights,
                                  seed=s, epochs=self.budget.epochs, batch_size=self.batch_size,
                                  precision=self.precision, cache_dir=self.cache_dir)
            self.budget.record(len(subset), time.perf_counter() - start)
        else:
            pred, _ = probe_point(self.extracted[method], self._y, fit_idx, val_idx, test, len(classes), s)
        return {"method": method, "backbone": self.names[method], "shots": str(k), "seed": s, "n_train": len(subset),
                **metrics(classes, self._y[test], pred), "seconds": time.perf_counter() - start}


def _as_data(data: LabelledData | str | Path, modality: str | None) -> LabelledData:
    from transferkit.data.dataset import LabelledData

    if isinstance(data, LabelledData):
        return data
    from transferkit.data import load_dataset

    return load_dataset(data, modality=modality or "image")
