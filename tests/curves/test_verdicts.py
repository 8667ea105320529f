"""The curve's verdicts (`curves.verdicts`), on hand-made frames: where transfer matches from scratch and
where it stops paying."""

from __future__ import annotations

import pandas as pd

from transferkit import curves


def _frame(points: dict[str, dict[str, float]]) -> pd.DataFrame:
    rows = [{"method": m, "backbone": "x", "shots": s, "seed": 0, "n_train": 10 * (100 if s == "all" else int(s)),
             "accuracy": acc, "balanced_accuracy": acc, "macro_f1": acc, "seconds": 0.1}
            for m, by_shots in points.items() for s, acc in by_shots.items()]
    frame = pd.DataFrame(rows, columns=list(curves.COLUMNS))
    frame.attrs["n_classes"] = 10
    return frame


def test_the_verdicts_say_where_transfer_matches_and_where_it_stops_paying() -> None:
    frame = _frame({"transfer": {"1": 0.60, "5": 0.85, "20": 0.93, "all": 0.945},
                    "from scratch": {"1": 0.30, "5": 0.60, "20": 0.925, "all": 0.94}})
    (verdict,) = curves.summarize(frame)
    assert verdict.matches_scratch_all_at == "20"  # 93% ≥ 94% − 1 point
    assert verdict.stops_paying_at == "20"  # from 20 on, from scratch is within 1 point
    assert "with 20 per class" in verdict.sentences[0] and "stops paying at 20" in verdict.sentences[1]


def test_the_verdicts_when_transfer_never_pays_or_always_pays() -> None:
    never = _frame({"transfer": {"1": 0.4, "10": 0.7, "all": 0.9},
                    "from scratch": {"1": 0.7, "10": 0.9, "all": 0.99}})
    (v,) = curves.summarize(never)
    assert v.matches_scratch_all_at is None and v.stops_paying_at == "1"
    assert "does not reach" in v.sentences[0] and "does not pay here" in v.sentences[1]
    always = _frame({"transfer": {"1": 0.8, "10": 0.9, "all": 0.99},
                     "from scratch": {"1": 0.3, "10": 0.5, "all": 0.8}})
    (v,) = curves.summarize(always)
    assert v.matches_scratch_all_at == "1" and v.stops_paying_at is None
    assert "pays at every point measured" in v.sentences[1]


def test_a_dip_in_the_middle_is_not_called_paying_at_every_point() -> None:
    """The cards demo's curve: transfer ahead at 1, 2, 5, 20 and all, behind at 10 per class."""
    dip = _frame({"transfer": {"1": 0.29, "5": 0.59, "10": 0.575, "20": 0.70, "all": 0.76},
                  "from scratch": {"1": 0.25, "5": 0.45, "10": 0.615, "20": 0.66, "all": 0.62}})
    (v,) = curves.summarize(dip)
    assert v.stops_paying_at is None
    assert "pays at every point" not in v.sentences[1] and "not at every point: at 10 per class" in v.sentences[1]
