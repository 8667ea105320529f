"""What the command tests share: one probe fitted by `transferkit fit` (once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import run_cli

#: a tiny random-init network, for the tests about the command rather than the model's accuracy
TINY = ("--backbone", "test_efficientnet", "--weights", "random")


@pytest.fixture(scope="session")
def probe_run(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init `test_efficientnet` probe on `image_folder`. Tests may add an `onnx/` export to it;
    anything else they change happens on a copy. The colours are told apart even by random features (its
    test accuracy is 100%), so `predict` and `evaluate` tests read its predictions as right or wrong."""
    out = tmp_path_factory.mktemp("probe-run") / "run"
    code, output = run_cli("fit", image_folder, *TINY, "--out", out, "--json")
    assert code == 0, output
    return out
