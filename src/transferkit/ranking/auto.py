"""Automatic choices for `transferkit fit` and the `transferkit rank` command.

- ``--backbone auto`` (or ``auto:a,b@random,…`` to name the candidates) ranks the candidates on the
  training part of the data — the same split fit then uses, so the test set never steers the
  choice — prints every score and the agreement, and fits the pick.
- ``--strategy auto`` chooses between a probe and fine-tuning with `decide_strategy`, a stated
  rule on data size and time budget.

Kept apart from `workflow.py` and `cli.py` so those stay thin; they call `resolve_auto` and
`rank_and_print`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from transferkit.errors import ConfigError
from transferkit.ranking.policy import DEFAULT_SELECT, DEFAULT_SUBSAMPLE, RankingTable

#: fewest training examples per class, and in total, for fine-tuning to be considered.
FINETUNE_MIN_PER_CLASS = 20
FINETUNE_MIN_TOTAL = 200
#: default wall-clock budget for training, minutes.
DEFAULT_BUDGET_MINUTES = 30.0
#: training images per second assumed for the estimate: measured order of magnitude for a small
#: CNN (EfficientNet-Lite0, forward + backward, bf16) on 2 CPU cores, and on one GPU.
TRAIN_IMAGES_PER_SECOND = {"cpu": 15.0, "gpu": 400.0}
DEFAULT_EPOCHS = 10


@dataclass(frozen=True)
class StrategyDecision:
    """What ``--strategy auto`` chose, the rule that applied, and the figures it used."""

    strategy: str
    rule: str
    reason: str
    estimated_minutes: float

    def __str__(self) -> str:
        return f"{self.strategy} — {self.rule}: {self.reason}"


def decide_strategy(
    n_train: int,
    n_classes: int,
    *,
    budget_minutes: float | None = None,
    epochs: int | None = None,
    device: str = "cpu",
) -> StrategyDecision:
    """Probe or fine-tune, by two rules applied in order.

    1. *small data*: fewer than FINETUNE_MIN_PER_CLASS examples per class or FINETUNE_MIN_TOTAL
       in all → probe. Fine-tuning millions of weights on so few examples overfits, and a linear
       probe on pretrained features is the stronger transfer in that regime (Kornblith et al.,
       CVPR 2019, find the gap to fine-tuning closes as data shrinks).
    2. *budget*: the estimated fine-tuning time, epochs × n_train / TRAIN_IMAGES_PER_SECOND, above
       the budget → probe (it trains in seconds on cached features). Otherwise fine-tune.
    """
    budget = DEFAULT_BUDGET_MINUTES if budget_minutes is None else float(budget_minutes)
    if budget <= 0:
        raise ConfigError(f"--budget must be a positive number of minutes; got {budget_minutes}")
    n_epochs = DEFAULT_EPOCHS if epochs is None else int(epochs)
    kind = "gpu" if device not in ("cpu", "mps") else "cpu"
    minutes = n_epochs * n_train / TRAIN_IMAGES_PER_SECOND[kind] / 60.0
    per_class = n_train / max(1, n_classes)
    if per_class < FINETUNE_MIN_PER_CLASS or n_train < FINETUNE_MIN_TOTAL:
        return StrategyDecision(
            "probe", f"small data (< {FINETUNE_MIN_PER_CLASS} per class or < {FINETUNE_MIN_TOTAL} in all → probe)",
            f"{n_train} training examples, {per_class:.0f} per class: fine-tuning would overfit, a linear "
            "probe on frozen features transfers better with this little data", minutes)
    if minutes > budget:
        return StrategyDecision(
            "probe", "budget (estimated fine-tuning time > budget → probe)",
            f"fine-tuning {n_epochs} epochs × {n_train} examples at ~{TRAIN_IMAGES_PER_SECOND[kind]:.0f} img/s "
            f"on {kind} ≈ {minutes:.0f} min > budget {budget:.0f} min (raise --budget to fine-tune)", minutes)
    return StrategyDecision(
        "finetune", "enough data within budget → fine-tune",
        f"{n_train} training examples ({per_class:.0f} per class) and fine-tuning ≈ {minutes:.1f} min "
        f"≤ budget {budget:.0f} min on {kind}", minutes)


def _device_kind(options: dict[str, Any]) -> str:
    accel = options.get("accelerator")
    if accel in ("cpu", "gpu"):
        return str(accel)
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def _candidates(backbone: str) -> str | None:
    """'auto' → None (every available backbone); 'auto:a,b' → 'a,b'."""
    _, _, names = backbone.partition(":")
    return names.strip() or None


def is_auto(value: Any) -> bool:
    return isinstance(value, str) and (value == "auto" or value.startswith("auto:"))


def resolve_auto(options: dict[str, Any], *, console: Console) -> dict[str, Any]:
    """Replace ``backbone='auto'`` / ``strategy='auto'`` in fit options by the choice, printing why."""
    from transferkit.data import load_dataset
    from transferkit.data.split import split_indices

    if not (is_auto(options.get("backbone")) or options.get("strategy") == "auto"):
        return options
    options = dict(options)
    quiet = bool(options.get("as_json"))
    dataset = load_dataset(Path(options["data"]), modality=options.get("modality") or "image",
                           path_column=options.get("path_column", "path"),
                           label_column=options.get("label_column", "label"))
    dataset.validate_for_training()
    splits = split_indices(dataset.labels, val_fraction=float(options.get("val", 0.15)),
                           test_fraction=float(options.get("test", 0.15)), seed=int(options.get("seed", 0)),
                           splits=dataset.splits)
    fit_part = dataset.subset(sorted(splits["train"] + splits["val"]))
    fit_part.source = dataset.source
    if is_auto(options.get("backbone")):
        if options.get("weights"):
            raise ConfigError("--weights applies to one backbone; with --backbone auto name controls as "
                              "--backbone auto:NAME,NAME@random")
        from transferkit.ranking.rank import rank, ranking_options

        table = rank(fit_part, backbones=_candidates(options["backbone"]),
                     subsample=options.get("subsample") or DEFAULT_SUBSAMPLE, seed=int(options.get("seed", 0)),
                     cache=options.get("cache_dir"),
                     options=ranking_options(int(options.get("batch_size", 64)), options.get("precision", "auto"),
                                             progress=not quiet))
        best = table.best
        if best is None:
            raise ConfigError(f"--backbone auto could not rank any candidate: {table.reason}")
        if not quiet:
            console.print(table)
            console.print(f"[bold]--backbone auto:[/] fitting {best.name} (features of the ranked samples "
                          "come from the cache)")
        options["backbone"], options["weights"] = best.backbone, best.weights
        options["ranking"] = table.to_dict()
    if options.get("strategy") == "auto":
        decision = decide_strategy(len(splits["train"]), len(dataset.classes), budget_minutes=options.get("budget"),
                                   epochs=options.get("epochs"), device=_device_kind(options))
        if not quiet:
            console.print(f"[bold]--strategy auto:[/] {decision}")
        options["strategy"] = decision.strategy
        options["strategy_decision"] = {"strategy": decision.strategy, "rule": decision.rule,
                                        "reason": decision.reason}
    return options


def rank_and_print(
    data: Path,
    *,
    backbones: str | None,
    metrics: str | None,
    select: str = DEFAULT_SELECT,
    subsample: int | None = DEFAULT_SUBSAMPLE,
    layers: bool = False,
    seed: int = 0,
    batch_size: int = 32,
    precision: str = "auto",
    cache_dir: Any = None,
    path_column: str = "path",
    label_column: str = "label",
    modality: str | None = None,
    text_column: str | None = None,
    audio_column: str | None = None,
    image_column: str | None = None,
    as_json: bool = False,
    console: Console,
) -> RankingTable:
    """`transferkit rank`: rank the candidates on DATA and print the table (or JSON).

    The modality is resolved exactly as `fit` resolves it (column flags, then --modality, then the
    data itself), so ranking then fitting reads the same inputs and reuses the same cached features.
    """
    from transferkit.data import load_dataset
    from transferkit.modalities import prepare_fit_options
    from transferkit.ranking.rank import rank, ranking_options

    resolved = prepare_fit_options({
        "data": str(data), "modality": modality, "path_column": path_column, "text_column": text_column,
        "audio_column": audio_column, "image_column": image_column, "backbone": backbones or "auto",
    })
    if resolved["modality"] == "table":
        raise ConfigError("rank scores one input column at a time: give one of --text-column, --image-column "
                          "or --audio-column")
    dataset = load_dataset(data, modality=resolved["modality"], path_column=resolved["path_column"],
                           label_column=label_column)
    table = rank(dataset, backbones=backbones, metrics=metrics, select=select,
                 subsample=subsample if subsample and subsample > 0 else None, layers=layers, seed=seed,
                 cache=cache_dir, options=ranking_options(batch_size, precision, progress=not as_json))
    if as_json:
        print(json.dumps(table.to_dict(), indent=2, default=str))
    else:
        console.print(table)
    return table
