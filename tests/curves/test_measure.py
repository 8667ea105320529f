"""The data-efficiency curve (`transferkit.curves`): grid, seeds, caps, files, verdicts.

The pretrained side is a tiny random-init timm network (`test_efficientnet`) and the from-scratch
side the real HOG features, on generated images whose colour is the label, so a curve takes seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import transferkit
from transferkit import curves
from transferkit.data import load_dataset
from transferkit.errors import BundleError, ConfigError

COLOURS = {"red": (200, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 210)}
TINY = {"backbone": "test_efficientnet", "weights": "random"}


def colour_folder(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """root/<colour>/<i>.png: noisy 32x32 images whose dominant colour is the label."""
    rng = np.random.default_rng(seed)
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = (np.array(COLOURS[name])[None, None, :] + rng.normal(0, 40, (32, 32, 3))).clip(0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def balanced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return colour_folder(tmp_path_factory.mktemp("curve") / "colours", {"red": 12, "green": 12, "blue": 12})


@pytest.fixture(scope="module")
def small_curve(balanced: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    cache = tmp_path_factory.mktemp("curve-cache")
    return curves.curve(balanced, shots=(1, 2, 5, "all"), seeds=2, test_fraction=0.25, cache_dir=cache, **TINY)


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


def test_the_same_seed_gives_the_same_curve(balanced: Path, small_curve: pd.DataFrame, tmp_path: Path) -> None:
    again = curves.curve(balanced, shots=(1, 2, 5, "all"), seeds=2, test_fraction=0.25, cache_dir=tmp_path, **TINY)
    pd.testing.assert_frame_equal(again.drop(columns="seconds"), small_curve.drop(columns="seconds"))


def test_shot_counts_beyond_the_largest_class_are_capped_to_all() -> None:
    kept, notes, dropped = curves.plan_shots([1, 9, 50, "all"], {"a": 9, "b": 9})
    assert kept == [1, "all"]
    assert dropped == {"9": "capped to 'all'", "50": "capped to 'all'"}
    assert all("capped to 'all'" in n for n in notes) and len(notes) == 2


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


@pytest.mark.parametrize("bad", ["0", "-1", "1,0,5", "two", "1.5", ""])
def test_bad_shots_are_a_clear_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="shots"):
        curves.parse_shots(bad)


def test_bad_shots_fail_before_any_work(balanced: Path) -> None:
    with pytest.raises(ConfigError, match="0 labels per class"):
        curves.curve(balanced, shots=[0, 5], **TINY)
    with pytest.raises(ConfigError, match="seeds"):
        curves.curve(balanced, seeds=0, **TINY)
    with pytest.raises(ConfigError, match="methods"):
        curves.curve(balanced, methods=["transfer", "magic"], **TINY)


def test_files_round_trip_and_the_picture_is_not_blank(small_curve: pd.DataFrame, tmp_path: Path) -> None:
    written = curves.save_curve(small_curve, tmp_path / "out", title="colours")
    back = curves.read_curve(written["csv"])
    pd.testing.assert_frame_equal(back, small_curve)
    with Image.open(written["png"]) as img:
        assert img.size[0] >= 600 and img.size[1] >= 350
        pixels = np.asarray(img.convert("L"), np.float32)
    assert pixels.std() > 20  # lines, text and bands on white, not an empty canvas
    record = json.loads(written["json"].read_text())
    assert record["format"] == "transferkit.curve" and record["status"] == "complete"
    assert record["summary"] and record["notes"] == small_curve.attrs["notes"]


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


def test_the_curve_folder_is_never_a_users_folder(tmp_path: Path) -> None:
    curves.check_curve_folder(tmp_path / "new")  # new: fine
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match=r"notes\.txt"):
        curves.check_curve_folder(user, overwrite=True)
    ours = tmp_path / "ours"
    curves.mark_curve_folder(ours)
    (ours / curves.CURVE_CSV).write_text("method\n")
    with pytest.raises(BundleError, match="--overwrite"):
        curves.check_curve_folder(ours)
    curves.check_curve_folder(ours, overwrite=True)
    (ours / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match=r"notes\.txt"):
        curves.check_curve_folder(ours, overwrite=True)
    with pytest.raises(BundleError, match="is a file"):
        curves.check_curve_folder(user / "notes.txt")


def test_a_curve_beside_a_model_is_the_models_own(image_folder: Path, small_curve: pd.DataFrame,
                                                  tmp_path: Path) -> None:
    from transferkit import TransferClassifier
    from transferkit.bundle import check_writable, read_manifest

    model = tmp_path / "model"
    TransferClassifier("hog", progress=False).fit(image_folder).save(model)
    curves.check_curve_folder(model)
    curves.mark_curve_folder(model)
    curves.save_curve(small_curve, model)
    assert set(curves.CURVE_FILES) <= set(read_manifest(model)["files"])
    check_writable(model, overwrite=True)  # fit --overwrite may replace the model and its curve
    with pytest.raises(BundleError, match="already holds a curve"):
        curves.check_curve_folder(model)
    # the model's report shows the curve: its picture, and its points as a table
    from transferkit.report import report_run

    html = report_run(model, image_folder).read_text()
    assert 'id="plot-curve"' in html and "from scratch" in html


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


def test_a_dip_in_the_middle_is_not_called_paying_at_every_point() -> None:
    """The cards demo's curve: transfer ahead at 1, 2, 5, 20 and all, behind at 10 per class."""
    dip = _frame({"transfer": {"1": 0.29, "5": 0.59, "10": 0.575, "20": 0.70, "all": 0.76},
                  "from scratch": {"1": 0.25, "5": 0.45, "10": 0.615, "20": 0.66, "all": 0.62}})
    (v,) = curves.summarize(dip)
    assert v.stops_paying_at is None
    assert "pays at every point" not in v.sentences[1] and "not at every point: at 10 per class" in v.sentences[1]
