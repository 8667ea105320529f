"""The curve's grid (`curves.grid`): shot counts parsed and capped, nested seeded subsets drawn from the
pool only, and the validation held out inside a point."""

from __future__ import annotations

from pathlib import Path

import pytest

from transferkit import curves
from transferkit.data import load_dataset
from transferkit.errors import ConfigError


def test_subsets_are_balanced_nested_seeded_and_never_touch_the_test_split(balanced: Path) -> None:
    data = load_dataset(balanced)
    plan = curves.make_plan(data, [1, 2, 5, "all"], test_fraction=0.25, seed=0)
    assert not set(plan.test) & set(plan.pool)
    a = curves.draw_subsets(data.labels, plan.pool, plan.shots, seed=0)
    for k in (1, 2, 5):
        labels = [data.labels[i] for i in a[k]]
        assert sorted(labels.count(c) for c in data.classes) == [k, k, k]
        assert set(a[k]) <= set(plan.pool)
    assert set(a[1]) <= set(a[2]) <= set(a[5]) <= set(a["all"]) == set(plan.pool)
    assert a == curves.draw_subsets(data.labels, plan.pool, plan.shots, seed=0)
    assert a[2] != curves.draw_subsets(data.labels, plan.pool, plan.shots, seed=1)[2]
    # within a point: 20% held out to choose C (one per class at least); none with one per class
    fit, held = curves.point_validation(data.labels, a[5], seed=0)
    assert sorted(fit + held) == a[5] and len({data.labels[i] for i in held}) == 3
    assert curves.point_validation(data.labels, a[1], seed=0) == (a[1], [])


def test_shot_counts_beyond_the_largest_class_are_capped_to_all() -> None:
    kept, notes, dropped = curves.plan_shots([1, 9, 50, "all"], {"a": 9, "b": 9})
    assert kept == [1, "all"]
    assert dropped == {"9": "capped to 'all'", "50": "capped to 'all'"}
    assert all("capped to 'all'" in n for n in notes) and len(notes) == 2


@pytest.mark.parametrize("bad", ["0", "-1", "1,0,5", "two", "1.5", ""])
def test_bad_shots_are_a_clear_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="shots"):
        curves.parse_shots(bad)
