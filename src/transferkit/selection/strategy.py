"""`--strategy auto`: probe or fine-tune, by a stated rule on data size and time budget."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from transferkit.errors import BackboneError, ConfigError

if TYPE_CHECKING:
    from transferkit.estimators.transfer_estimator import TransferEstimator

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


def too_little_data(n_train: int, n_classes: int) -> bool:
    """The small-data rule: fewer than FINETUNE_MIN_PER_CLASS examples per class or FINETUNE_MIN_TOTAL in all."""
    return n_train / max(1, n_classes) < FINETUNE_MIN_PER_CLASS or n_train < FINETUNE_MIN_TOTAL


def decide_strategy(
    n_train: int,
    n_classes: int,
    *,
    budget_minutes: float | None = None,
    epochs: int | None = None,
    device: str = "cpu",
    measured_rate: float | None = None,
) -> StrategyDecision:
    """Probe or fine-tune, by two rules applied in order.

    1. *small data*: fewer than FINETUNE_MIN_PER_CLASS examples per class or FINETUNE_MIN_TOTAL
       in all → probe. Fine-tuning millions of weights on so few examples overfits, and a linear
       probe on pretrained features is the stronger transfer in that regime (Kornblith et al.,
       CVPR 2019, find the gap to fine-tuning closes as data shrinks).
    2. *budget*: the estimated fine-tuning time, epochs × n_train / rate, above the budget → probe
       (it trains in seconds on cached features). Otherwise fine-tune. The rate is
       `measured_rate` (examples/s timed on a few real training steps here) when given, else the
       order-of-magnitude constant TRAIN_IMAGES_PER_SECOND.
    """
    budget = DEFAULT_BUDGET_MINUTES if budget_minutes is None else float(budget_minutes)
    if budget <= 0:
        raise ConfigError(f"--budget must be a positive number of minutes; got {budget_minutes}")
    n_epochs = DEFAULT_EPOCHS if epochs is None else int(epochs)
    kind = "gpu" if device not in ("cpu", "mps") else "cpu"
    rate = float(measured_rate) if measured_rate else TRAIN_IMAGES_PER_SECOND[kind]
    how = "measured here" if measured_rate else "assumed"
    minutes = n_epochs * n_train / rate / 60.0
    per_class = n_train / max(1, n_classes)
    if too_little_data(n_train, n_classes):
        return StrategyDecision(
            "probe", f"small data (< {FINETUNE_MIN_PER_CLASS} per class or < {FINETUNE_MIN_TOTAL} in all → probe)",
            f"{n_train} training examples, {per_class:.0f} per class: fine-tuning would overfit, a linear "
            "probe on frozen features transfers better with this little data", minutes)
    if minutes > budget:
        return StrategyDecision(
            "probe", "budget (estimated fine-tuning time > budget → probe)",
            f"fine-tuning {n_epochs} epochs × {n_train} examples at {rate:.1f} examples/s ({how}, {kind}) "
            f"≈ {minutes:.0f} min > budget {budget:.0f} min (raise --budget to fine-tune)", minutes)
    return StrategyDecision(
        "finetune", "enough data within budget → fine-tune",
        f"{n_train} training examples ({per_class:.0f} per class) and fine-tuning {n_epochs} epochs at "
        f"{rate:.1f} examples/s ({how}, {kind}) ≈ {minutes:.1f} min ≤ budget {budget:.0f} min", minutes)


def choose_strategy(n_train: int, n_classes: int, sample: Sequence[object], finetuner: Callable[[], TransferEstimator],
                    *, budget_minutes: float | None = None, epochs: int | None = None, device: str = "cpu"
                    ) -> tuple[StrategyDecision, TransferEstimator | None, float | None]:
    """`decide_strategy` with the rate measured here: `finetuner()` builds the fine-tuning estimator, whose
    `training_rate` on `sample` (a few training inputs) the budget rule uses. Returns the decision, that
    estimator (to fit when fine-tuning is chosen: built once) and the rate; none is built under the
    small-data rule. An estimator that cannot be fine-tuned (a concatenation) gives a probe decision."""
    decision = decide_strategy(n_train, n_classes, budget_minutes=budget_minutes, epochs=epochs, device=device)
    if too_little_data(n_train, n_classes):  # only otherwise does the rate matter
        return decision, None, None
    try:
        candidate = finetuner()
        rate = candidate.training_rate(sample, n_classes)
    except (BackboneError, ConfigError) as exc:
        return StrategyDecision("probe", "cannot be fine-tuned → probe", str(exc), 0.0), None, None
    if rate is None:
        return StrategyDecision("probe", "cannot be fine-tuned → probe", "this estimator trains no network", 0.0), \
            None, None
    decision = decide_strategy(n_train, n_classes, budget_minutes=budget_minutes, epochs=epochs, device=device,
                               measured_rate=rate)
    return decision, candidate, rate


def duration(minutes: float) -> str:
    """A time `--strategy auto` reports (its estimate, what fine-tuning took): seconds under a minute."""
    return f"{60 * minutes:.0f} s" if minutes < 1 else f"{minutes:.1f} min"
