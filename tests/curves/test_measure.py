"""The data-efficiency curve (`curves.measure`): `curve` end to end: its frame, seeds, skipped points, a
Ctrl-C, the fine-tuning budget.

The pretrained side is a tiny random-init timm network (`test_efficientnet`) and the from-scratch
side the real HOG features, on generated images whose colour is the label, so a curve takes seconds.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from tests.curves.conftest import TINY, colour_folder

import transferkit
from transferkit import curves
from transferkit.errors import ConfigError


def test_the_grid_has_one_row_per_method_shots_and_seed(small_curve: pd.DataFrame) -> None:
    frame = small_curve
    assert list(frame.columns) == list(curves.COLUMNS)
    assert len(frame) == 4 * 2 * 2  # shots x seeds x methods
    assert set(frame["method"]) == {"transfer", "from scratch"}
    assert set(frame["backbone"]) == {"test_efficientnet", "hog"}
    assert set(frame["seed"]) == {0, 1}
    # 36 images, 25% test (3 per class) → 9 per class to train on; k labels per class → 3k labels
    assert frame.attrs["n_test"] == 9 and frame.attrs["pool_counts"] == {"blue": 9, "green": 9, "red": 9}
    by_shots = frame.groupby("shots")["n_train"].unique().to_dict()
    assert {k: list(v) for k, v in by_shots.items()} == {"1": [3], "2": [6], "5": [15], "all": [27]}
    assert frame[["accuracy", "balanced_accuracy", "macro_f1"]].apply(lambda c: c.between(0, 1)).all().all()
    # the colour thumbnail in the from-scratch features separates these classes: far above chance (1/3)
    scratch_all = frame[(frame["method"] == "from scratch") & (frame["shots"] == "all")]
    assert scratch_all["accuracy"].min() >= 0.9
    assert any("C = 1" in note for note in frame.attrs["notes"])  # the 1-shot validation rule is said


def test_the_same_seed_gives_the_same_curve(balanced: Path, small_curve: pd.DataFrame, tmp_path: Path) -> None:
    again = curves.curve(balanced, shots=(1, 2, 5, "all"), seeds=2, test_fraction=0.25, cache_dir=tmp_path, **TINY)
    pd.testing.assert_frame_equal(again.drop(columns="seconds"), small_curve.drop(columns="seconds"))


def test_a_class_too_small_for_a_shot_count_skips_that_point_for_every_method(tmp_path: Path) -> None:
    folder = colour_folder(tmp_path / "uneven", {"red": 12, "green": 12, "blue": 6})
    frame = curves.curve(folder, shots=(1, 2, 5, "all"), seeds=1, test_fraction=0.25, cache_dir=tmp_path / "c",
                         **TINY)
    pools = frame.attrs["pool_counts"]
    assert pools["blue"] < 5 < pools["red"]
    assert "5" not in set(frame["shots"]) and set(frame["shots"]) == {"1", "2", "all"}
    assert len(frame) == 3 * 2
    note = next(n for n in frame.attrs["notes"] if n.startswith("5 labels per class"))
    assert "skipped for every method" in note and "'blue'" in note
    assert frame.attrs["dropped_shots"] == {"5": "skipped"}


def test_bad_shots_fail_before_any_work(balanced: Path) -> None:
    with pytest.raises(ConfigError, match="0 labels per class"):
        curves.curve(balanced, shots=[0, 5], **TINY)
    with pytest.raises(ConfigError, match="seeds"):
        curves.curve(balanced, seeds=0, **TINY)
    with pytest.raises(ConfigError, match="methods"):
        curves.curve(balanced, methods=["transfer", "magic"], **TINY)


def test_ctrl_c_keeps_the_finished_points(balanced: Path, tmp_path: Path) -> None:
    seen: list[dict] = []

    def stop_after_three(row: dict | None, done: int, total: int) -> None:
        if row is not None:
            seen.append(row)
            if len(seen) == 3:
                raise KeyboardInterrupt

    with pytest.warns(UserWarning, match="interrupted: 3 of 16"):
        frame = curves.curve(balanced, shots=(1, 2, 5, "all"), seeds=2, test_fraction=0.25, cache_dir=tmp_path,
                             on_point=stop_after_three, **TINY)
    assert frame.attrs["interrupted"] is True and len(frame) == 3
    assert frame.to_dict(orient="records") == seen


def test_the_public_api_is_transferkit_curve(balanced: Path) -> None:
    assert transferkit.curve is curves.curve
    assert "curve" in transferkit.__all__


def test_fine_tuned_points_beyond_the_budget_are_skipped_and_said(balanced: Path, tmp_path: Path) -> None:
    frame = curves.curve(balanced, shots=(1, 2, "all"), seeds=1, test_fraction=0.25, cache_dir=tmp_path,
                         methods=("transfer", "from scratch", "fine-tuned"), budget=0.001, **TINY)
    assert "fine-tuned" not in set(frame["method"]) and len(frame) == 3 * 2
    notes = " ".join(frame.attrs["notes"])
    assert "over the 0.001-minute budget" in notes and "2/seed 0" in notes and "all/seed 0" in notes
    assert "no 1-label point" in notes  # fine-tuning takes at least 2 examples of each class
    with pytest.raises(ConfigError, match="fine-tuned"):
        curves.curve(balanced, budget=5, **TINY)


@pytest.mark.slow
def test_a_fine_tuned_point_runs_within_the_budget(balanced: Path, tmp_path: Path) -> None:
    frame = curves.curve(balanced, shots=(2,), seeds=1, test_fraction=0.25, cache_dir=tmp_path,
                         methods=("transfer", "fine-tuned"), budget=30, finetune_epochs=1, **TINY)
    tuned = frame[frame["method"] == "fine-tuned"]
    assert len(tuned) == 1 and tuned["n_train"].iloc[0] == 6 and 0 <= tuned["accuracy"].iloc[0] <= 1


