"""What the command tests share: one probe fitted by `transferkit fit` (once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import run_cli


@pytest.fixture(scope="session")
def probe_run(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init `test_efficientnet` probe on `image_folder`. Tests may add an `onnx/` export to it;
    anything else they change happens on a copy."""
    out = tmp_path_factory.mktemp("probe-run") / "run"
    code, output = run_cli("fit", image_folder, "--backbone", "test_efficientnet", "--weights", "random",
                           "--out", out, "--json")
    assert code == 0, output
    return out
