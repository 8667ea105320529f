"""The report's analyses (`report.analysis`): the expected calibration error on hand-made confidences."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.report.analysis import calibration


def test_expected_calibration_error() -> None:
    always_right = calibration(np.full(10, 0.95), np.ones(10, bool))
    assert always_right.ece == pytest.approx(0.05)
    overconfident = calibration(np.ones(4), np.array([1, 0, 1, 0], bool))
    assert overconfident.ece == pytest.approx(0.5)
    assert overconfident.counts[-1] == 4  # a confidence of exactly 1 lands in the last bin
    calibrated = calibration(np.array([0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75]),
                             np.array([1, 0, 0, 0, 1, 1, 1, 0], bool))
    assert calibrated.ece == pytest.approx(0.0)
