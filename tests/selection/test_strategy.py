"""`selection.choose_strategy`: the budget rule on the rate the fine-tuning estimator itself measures."""

from __future__ import annotations

from typing import Any

import pytest

from transferkit.errors import ConfigError
from transferkit.selection import choose_strategy


class _Finetuner:
    """Stands in for a fine-tuning estimator: only `training_rate`, the contract the choice uses."""

    def __init__(self, rate: float | None) -> None:
        self.rate, self.asked = rate, 0

    def training_rate(self, X: Any, n_classes: int) -> float | None:
        self.asked += 1
        return self.rate


def test_small_data_builds_no_estimator() -> None:
    built: list[object] = []
    decision, chosen, rate = choose_strategy(30, 3, ["x"], lambda: built.append(1) or _Finetuner(1.0))  # type: ignore[arg-type, func-returns-value]
    assert decision.strategy == "probe" and chosen is None and rate is None and not built


@pytest.mark.parametrize(("rate", "strategy"), [(1000.0, "finetune"), (0.01, "probe")])
def test_the_measured_rate_decides_and_the_measured_estimator_comes_back(rate: float, strategy: str) -> None:
    finetuner = _Finetuner(rate)
    decision, chosen, measured = choose_strategy(2000, 4, ["x"] * 8, lambda: finetuner,  # type: ignore[arg-type, return-value]
                                                 budget_minutes=10, epochs=10)
    assert decision.strategy == strategy and measured == rate and finetuner.asked == 1
    assert chosen is finetuner  # built once: the one measured is the one to fit


def test_an_estimator_that_cannot_be_fine_tuned_gives_a_probe() -> None:
    def refuse() -> Any:
        raise ConfigError("a concatenation cannot be fine-tuned")

    decision, chosen, _ = choose_strategy(2000, 4, ["x"], refuse)
    assert decision.strategy == "probe" and "concatenation" in decision.reason and chosen is None
    decision, chosen, _ = choose_strategy(2000, 4, ["x"], lambda: _Finetuner(None))  # type: ignore[arg-type, return-value]
    assert decision.strategy == "probe" and chosen is None
