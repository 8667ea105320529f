"""The shift diagnostic: proxy A-distance before/after alignment, per-class verdict, the 2-D map."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.adapt.shift_diagnostic import ShiftDiagnostic, diagnose_shift, proxy_a_distance, shift_map
from transferkit.errors import ConfigError, DataError


def _blobs(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 3, size=(3, d))
    y = np.arange(n) % 3
    return means[y] + rng.normal(0, 1, size=(n, d)), y


def _standardise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / x.std(0)


def test_known_shift_is_seen_and_drops_after_alignment() -> None:
    source, y = _blobs(300, 8, seed=0)
    rng = np.random.default_rng(1)
    target_clean, _ = _blobs(300, 8, seed=0)  # the same class means
    target = (target_clean + rng.normal(0, 1, size=target_clean.shape) * 0.1) * 2.0 + 5.0  # scale + offset
    # a class-independent offset; alignment by per-domain standardisation recovers it
    diag = diagnose_shift(source, target, [f"c{v}" for v in y], source_aligned=_standardise(source),
                          target_aligned=_standardise(target), alignment="standardise")
    assert diag.domain_accuracy > 0.95 and diag.level == "strongly"
    assert diag.proxy_a_distance > 1.8
    assert diag.domain_accuracy_aligned is not None and diag.domain_accuracy_aligned < 0.65
    assert diag.proxy_a_distance_aligned is not None and diag.proxy_a_distance_aligned < diag.proxy_a_distance - 1
    assert {c.label for c in diag.per_class} == {"c0", "c1", "c2"}
    assert sum(c.n_target for c in diag.per_class) == 300
    text = diag.verdict()
    assert "differs strongly" in text and "after standardise" in text
    again = ShiftDiagnostic.from_dict(diag.to_dict())
    assert again.verdict() == text


def test_same_domain_reads_little() -> None:
    x, y = _blobs(400, 6, seed=3)
    diag = diagnose_shift(x[::2], x[1::2], y[::2])
    assert diag.domain_accuracy < 0.6 and diag.level == "little"
    assert diag.proxy_a_distance < 0.4
    assert "differs little" in diag.verdict()
    assert diag.worst_classes() == []


def test_worst_class_is_the_one_that_moved() -> None:
    source, y = _blobs(600, 6, seed=4)
    target, yt = _blobs(600, 6, seed=4)
    target = target + np.random.default_rng(5).normal(0, 0.05, target.shape)
    target[yt == 2] += 4.0  # only class 2's inputs moved (and stay nearest class 2's mean)
    diag = diagnose_shift(source, target, [f"k{v}" for v in y])
    worst = diag.worst_classes(1)
    assert worst and worst[0].label == "k2"
    by = {c.label: c for c in diag.per_class}
    assert by["k2"].domain_accuracy > by["k0"].domain_accuracy + 0.2


def test_same_seed_same_numbers() -> None:
    source, y = _blobs(200, 5, seed=6)
    target = source[::-1] + 0.5
    a = diagnose_shift(source, target, y, seed=3).to_dict()
    b = diagnose_shift(source, target, y, seed=3).to_dict()
    assert a == b


def test_bad_inputs_are_clear_errors() -> None:
    x, _ = _blobs(20, 4, seed=0)
    with pytest.raises(ConfigError, match="dimensions"):
        diagnose_shift(x, np.ones((5, 3)))
    with pytest.raises(DataError, match="TARGET"):
        diagnose_shift(x, np.zeros((0, 4)))
    with pytest.raises(DataError, match="at least 2"):
        diagnose_shift(x, x[:1])
    with pytest.raises(DataError, match="NaN"):
        diagnose_shift(x, np.full((4, 4), np.nan))


def test_proxy_a_distance_formula() -> None:
    assert proxy_a_distance(1.0) == 2.0
    assert proxy_a_distance(0.5) == 0.0
    assert proxy_a_distance(0.4) == 0.0  # floored
    assert proxy_a_distance(0.75) == pytest.approx(1.0)


def test_map_is_a_png_with_both_rows() -> None:
    source, y = _blobs(120, 5, seed=7)
    target = source + 3
    one = shift_map(source, target, y)
    two = shift_map(source, target, y, source_aligned=_standardise(source), target_aligned=_standardise(target),
                    alignment="coral")
    assert one.startswith(b"\x89PNG") and two.startswith(b"\x89PNG")
    from io import BytesIO

    from PIL import Image

    assert Image.open(BytesIO(two)).size[1] > Image.open(BytesIO(one)).size[1]  # two rows of panels


def test_wide_features_are_read_through_the_projection() -> None:
    """Wider than REDUCED_DIM: the classifier reads the sparse projection; a shift is still seen, none reads chance."""
    from transferkit.adapt.projection import REDUCED_DIM, random_projection

    d = 3 * REDUCED_DIM
    rng = np.random.default_rng(8)
    means = rng.normal(0, 1, size=(3, d))
    y = np.arange(600) % 3
    source = means[y] + rng.normal(0, 1, size=(600, d))
    same = means[y[:300]] + rng.normal(0, 1, size=(300, d))
    moved = same + rng.normal(0, 0.5, size=d)  # a class-independent offset, half a standard deviation per dimension
    assert random_projection(d).shape == (d, REDUCED_DIM)
    assert random_projection(REDUCED_DIM) is None
    shifted = diagnose_shift(source, moved, y)
    assert shifted.domain_accuracy > 0.95
    assert diagnose_shift(source, same, y).domain_accuracy < 0.6


def test_auto_in_the_shift_command_aligns_only_a_detected_shift() -> None:
    from transferkit.adapt.shift_diagnostic import diagnose_with_alignment

    x, y = _blobs(400, 6, seed=9)
    same, aligned = diagnose_with_alignment(x[::2], x[1::2], y[::2], method="auto")
    assert aligned is None and same.domain_accuracy_aligned is None
    moved, aligned = diagnose_with_alignment(x[::2], x[1::2] * 2.0 + 3.0, y[::2], method="auto")
    assert aligned is not None and moved.domain_accuracy_aligned is not None
    assert moved.domain_accuracy_aligned < moved.domain_accuracy
