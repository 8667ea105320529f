"""The labelled data a report scores (`report.labelled`): the run's own test split, re-derived; data that
changed since the fit is an error, not a wrong report."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.report.conftest import cli

from transferkit.errors import DataError
from transferkit.report import report_run


def test_changed_data_is_an_error_not_a_wrong_report(images: Path, tmp_path: Path) -> None:
    data = tmp_path / "colours"
    shutil.copytree(images, data)
    run = tmp_path / "run"
    cli("fit", data, "--backbone", "test_efficientnet", "--weights", "random", "--out", run, "--json")
    for extra in list((data / "blue").glob("*.png"))[:5]:
        extra.unlink()
    with pytest.raises(DataError, match="no longer splits as it did"):
        report_run(run)
