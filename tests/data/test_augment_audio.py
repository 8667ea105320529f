"""Audio augmentation for training views: deterministic for a seed, the right shapes, the asked-for
SNR, pitch and speed."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.data.augment_audio import (
    AudioAugment,
    add_noise,
    apply_gain,
    augment_waveform,
    pitch_shift,
    speed_perturb,
    time_stretch,
)
from transferkit.errors import ConfigError

SR = 16000


def tone(freq: float, seconds: float = 1.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(SR * seconds)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_hz(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * SR / len(wave))


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    noise = noisy.astype(np.float64) - clean
    return float(10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2)))


@pytest.mark.parametrize("factor", [0.9, 1.1, 1.25])
def test_speed_perturbation_changes_tempo_and_pitch_together(factor: float) -> None:
    x = tone(440.0, 2.0)
    y = speed_perturb(x, factor)
    assert abs(len(y) - len(x) / factor) <= 2
    assert dominant_hz(y) == pytest.approx(440.0 * factor, abs=2.0)
    assert y.dtype == x.dtype


@pytest.mark.parametrize("semitones", [-3.0, -1.0, 2.0, 12.0])
def test_pitch_shift_moves_the_pitch_and_keeps_the_length(semitones: float) -> None:
    x = tone(440.0, 2.0)
    y = pitch_shift(x, semitones)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert dominant_hz(y) == pytest.approx(440.0 * 2 ** (semitones / 12), rel=0.01)
    assert 0.5 < np.sqrt(np.mean(y[2000:-2000] ** 2)) / np.sqrt(np.mean(x**2)) < 1.5


def test_time_stretch_keeps_the_pitch() -> None:
    x = tone(600.0, 1.5)
    y = time_stretch(x, 0.8)
    assert abs(len(y) - len(x) / 0.8) <= 1
    assert dominant_hz(y) == pytest.approx(600.0, abs=2.0)


@pytest.mark.parametrize("target", [0.0, 10.0, 25.0])
def test_noise_is_added_at_the_asked_snr(target: float) -> None:
    x = tone(300.0, 2.0) + tone(1100.0, 2.0, 0.1)
    y = add_noise(x, target, seed=3)
    assert y.shape == x.shape
    assert snr_db(x, y) == pytest.approx(target, abs=0.1)
    noise_clip = np.random.default_rng(0).uniform(-1, 1, 5000).astype(np.float32)  # shorter: tiled
    z = add_noise(x, target, seed=3, noise=noise_clip)
    assert snr_db(x, z) == pytest.approx(target, abs=0.1)


def test_gain_scales_by_decibels() -> None:
    x = tone(500.0)
    assert np.abs(apply_gain(x, 6.0)).max() == pytest.approx(0.3 * 10 ** (6 / 20), rel=1e-4)
    assert np.abs(apply_gain(x, 20.0, clip=True)).max() == pytest.approx(1.0)


def test_every_function_is_deterministic_for_a_seed_and_leaves_its_input_alone() -> None:
    x = tone(350.0, 1.3) + tone(2000.0, 1.3, 0.05)
    before = x.copy()
    np.testing.assert_array_equal(add_noise(x, 12.0, seed=5), add_noise(x, 12.0, seed=5))
    assert not np.array_equal(add_noise(x, 12.0, seed=5), add_noise(x, 12.0, seed=6))
    views = [augment_waveform(x, seed) for seed in (0, 0, 1, 2, 3)]
    np.testing.assert_array_equal(views[0], views[1])
    assert any(v.shape != views[0].shape or not np.array_equal(v, views[0]) for v in views[2:])
    np.testing.assert_array_equal(x, before)


def test_views_follow_the_ranges_asked_for() -> None:
    x = tone(440.0, 2.0)
    only_speed = AudioAugment(speed=(1.2, 1.2), pitch_semitones=None, snr_db=None, gain_db=None, p=1.0)
    y = augment_waveform(x, 0, only_speed)
    assert abs(len(y) - len(x) / 1.2) <= 2
    only_noise = AudioAugment(speed=None, pitch_semitones=None, snr_db=(15.0, 15.0), gain_db=None, p=1.0)
    assert snr_db(x, augment_waveform(x, 4, only_noise)) == pytest.approx(15.0, abs=0.1)
    nothing = AudioAugment(p=0.0)
    np.testing.assert_array_equal(augment_waveform(x, 9, nothing), x)
    # switching one transform off leaves the others' draws as they were
    with_noise = AudioAugment(speed=(0.9, 1.1), pitch_semitones=None, snr_db=(5.0, 30.0), gain_db=None, p=1.0)
    without = AudioAugment(speed=(0.9, 1.1), pitch_semitones=None, snr_db=None, gain_db=None, p=1.0)
    assert len(augment_waveform(x, 21, with_noise)) == len(augment_waveform(x, 21, without))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigError, match="mono"):
        add_noise(np.zeros((2, 100), np.float32), 10.0)
    with pytest.raises(ConfigError, match="positive"):
        speed_perturb(tone(200.0), 0.0)
    with pytest.raises(ConfigError, match="low <= high"):
        AudioAugment(snr_db=(30.0, 10.0))
    with pytest.raises(ConfigError, match="probability"):
        AudioAugment(p=1.5)
    assert np.array_equal(add_noise(np.zeros(100, np.float32), 10.0), np.zeros(100, np.float32))
