"""Keep the better on validation (`selection.keep`), on two stand-in estimators whose validation scores are
set: the probe's score from before its refit counts, a tie keeps the probe, and the comparison is recorded."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from transferkit.data.dataset import LabelledData
from transferkit.selection.keep import keep_better

VALID = LabelledData(items=["a", "b", "c", "d"], labels=["x", "y", "x", "y"], source="valid")


class Fitted:
    """What `keep_better` asks of a fitted estimator: its fit report, a score on data, a summary."""

    kind = "probe"

    def __init__(self, score: float, choice: dict[str, Any] | None = None) -> None:
        self._score = score
        self.fit_report_ = SimpleNamespace(head_choice=choice or {}, timeline=[{"epoch": 1, "val_accuracy": score}])
        self.scored: list[list[Any]] = []

    def score(self, items: list[Any], labels: list[str]) -> float:
        self.scored.append(items)
        return self._score

    def summary(self) -> dict[str, Any]:
        return {"backbone": "hog"}


def test_the_probes_figure_from_before_its_refit_is_what_is_compared() -> None:
    # the refitted probe would score 1.0 on validation (it was fitted to it): its chosen C's 0.75 counts
    probe = Fitted(1.0, {"C": 1.0, "val_accuracy_by_C": {"1.0": 0.75}})
    tuned = Fitted(0.8)
    record: dict[str, Any] = {}
    assert keep_better(probe, tuned, VALID, record) is tuned  # type: ignore[arg-type]
    assert not probe.scored and tuned.scored == [VALID.items]
    assert record["compared"]["kept"] == "finetuned" and record["compared"]["val_accuracy_probe"] == 0.75
    assert record["compared"]["n_val"] == 4 and record["timeline"] == [{"epoch": 1, "val_accuracy": 0.8}]


def test_a_tie_keeps_the_probe_and_a_head_without_a_figure_is_scored() -> None:
    probe, tuned = Fitted(0.5), Fitted(0.5)  # an MLP head: no figure of its own, so it is scored
    record: dict[str, Any] = {}
    assert keep_better(probe, tuned, VALID, record) is probe  # type: ignore[arg-type]
    assert probe.scored == [VALID.items] and record["compared"]["kept"] == "probe"
