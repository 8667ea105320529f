"""Where a curve may be written (`curves.folder`): never into a user's folder; beside a model, as its own."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from transferkit import curves
from transferkit.errors import BundleError


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
