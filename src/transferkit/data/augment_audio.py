"""Audio augmentation for training views: speed and pitch perturbation, additive noise, gain.

Pure functions on mono float waveforms (numpy arrays): none changes its input, and the random
ones take a seed (or a `numpy.random.Generator`), so the same clip and seed give the same view on
every machine. They are the usual recipe for robustness to new speakers and recording conditions:

- `speed_perturb` (Ko et al., "Audio Augmentation for Speech Recognition", Interspeech 2015):
  resample by a factor, as a tape played faster or slower — tempo and pitch change together;
  factors 0.9 / 1.0 / 1.1 are Kaldi's standard.
- `pitch_shift`: pitch moved by some semitones at the same duration — a phase-vocoder time
  stretch (Flanagan & Golden 1966; Laroche & Dolson 1999) by the inverse factor, then resampling.
  It changes the apparent vocal-tract size (formants move with the pitch), a cheap voice change.
- `add_noise`: Gaussian (white) noise, or a given noise clip, scaled to a signal-to-noise ratio
  in dB over the whole clip: 10 · log10(mean(x²) / mean(n²)) = snr_db.
- `apply_gain`: a gain in dB (loudness; no clipping unless asked).

`AudioAugment` draws one random view from ranges of these (each applied with probability `p`),
`augment_waveform(wave, seed, AudioAugment())`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction

import numpy as np

from transferkit.errors import ConfigError
from transferkit.jsontypes import JSONObject

Seed = int | np.random.Generator


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _mono(wave: np.ndarray) -> np.ndarray:
    x = np.asarray(wave)
    if x.ndim != 1:
        raise ConfigError(f"audio augmentation takes a mono waveform of shape [n]; got shape {list(x.shape)}")
    return x


def _ratio(factor: float) -> Fraction:
    """`factor` as a fraction p/q with small terms (for a polyphase resampler)."""
    if not factor > 0:
        raise ConfigError(f"a speed or pitch factor must be positive; got {factor}")
    return Fraction(factor).limit_denominator(1000)


def _resample_by(wave: np.ndarray, factor: float) -> np.ndarray:
    """Play `wave` `factor` times faster: about len / factor samples, frequencies × factor."""
    ratio = _ratio(factor)
    if ratio == 1:
        return wave.copy()
    from scipy.signal import resample_poly

    return resample_poly(wave.astype(np.float64), ratio.denominator, ratio.numerator).astype(wave.dtype)


def speed_perturb(wave: np.ndarray, factor: float) -> np.ndarray:
    """`wave` played `factor` times faster (tempo and pitch × factor; length ≈ n / factor)."""
    return _resample_by(_mono(wave), factor)


def time_stretch(wave: np.ndarray, rate: float, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Phase-vocoder time stretch: `rate` times faster at the same pitch (length ≈ n / rate).

    STFT (periodic Hann, `n_fft`, `hop`, centred), magnitudes interpolated at frame positions
    0, rate, 2·rate, …, each bin's phase advanced by its measured instantaneous frequency, and an
    overlap-add inverse normalised by the summed squared window.
    """
    x = _mono(wave).astype(np.float64)
    if not rate > 0:
        raise ConfigError(f"time_stretch rate must be positive; got {rate}")
    if rate == 1 or len(x) == 0:
        return _mono(wave).copy()
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    padded = np.pad(x, (n_fft // 2, n_fft // 2 + n_fft))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop] * window
    spec = np.fft.rfft(frames, axis=1)  # [T, F]
    spec = np.concatenate([spec, np.zeros((1, spec.shape[1]))])
    expected = 2 * np.pi * hop * np.arange(spec.shape[1]) / n_fft  # phase advance per hop, per bin
    positions = np.arange(0, spec.shape[0] - 1, rate)
    phase = np.angle(spec[0])
    stretched = np.empty((len(positions), spec.shape[1]), dtype=complex)
    for k, t in enumerate(positions):
        i, frac = int(t), t - int(t)
        magnitude = (1 - frac) * np.abs(spec[i]) + frac * np.abs(spec[i + 1])
        stretched[k] = magnitude * np.exp(1j * phase)
        deviation = np.angle(spec[i + 1]) - np.angle(spec[i]) - expected
        phase = phase + expected + (deviation - 2 * np.pi * np.round(deviation / (2 * np.pi)))
    out_frames = np.fft.irfft(stretched, n=n_fft, axis=1) * window
    length = n_fft + hop * (len(positions) - 1)
    out, norm = np.zeros(length), np.zeros(length)
    for k, frame in enumerate(out_frames):
        out[k * hop : k * hop + n_fft] += frame
        norm[k * hop : k * hop + n_fft] += window**2
    out = out / np.maximum(norm, 1e-8)
    target = round(len(x) / rate)
    out = out[n_fft // 2 : n_fft // 2 + target]
    return np.pad(out, (0, target - len(out))).astype(_mono(wave).dtype)


def pitch_shift(wave: np.ndarray, semitones: float) -> np.ndarray:
    """`wave` with its pitch moved by `semitones` (± 12 = one octave), same length."""
    x = _mono(wave)
    if semitones == 0:
        return x.copy()
    factor = 2.0 ** (semitones / 12)
    out = _resample_by(time_stretch(x, 1 / factor), factor)
    if len(out) >= len(x):
        return out[: len(x)]
    return np.pad(out, (0, len(x) - len(out)))


def add_noise(
    wave: np.ndarray, snr_db: float, seed: Seed = 0, noise: np.ndarray | None = None
) -> np.ndarray:
    """`wave` plus noise at `snr_db` dB below its mean power: Gaussian, or `noise` (tiled or cut to
    length, from a random offset). A silent clip is returned unchanged (no SNR is defined)."""
    x = _mono(wave)
    rng = _rng(seed)
    power = float(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0
    if power == 0.0:
        return x.copy()
    if noise is None:
        n = rng.standard_normal(len(x))
    else:
        source = _mono(noise).astype(np.float64)
        if len(source) == 0 or not np.any(source):
            raise ConfigError("add_noise: the noise clip is empty or silent")
        reps = -(-(len(x) + len(source)) // len(source))
        start = int(rng.integers(0, len(source)))
        n = np.tile(source, reps)[start : start + len(x)]
    scale = np.sqrt(power / (10 ** (snr_db / 10)) / np.mean(n**2))
    return (x + scale * n).astype(x.dtype)


def apply_gain(wave: np.ndarray, gain_db: float, clip: bool = False) -> np.ndarray:
    """`wave` × 10^(gain_db / 20); with `clip`, limited to [-1, 1]."""
    out = _mono(wave) * (10 ** (gain_db / 20))
    return np.clip(out, -1.0, 1.0) if clip else out


@dataclass(frozen=True)
class AudioAugment:
    """Ranges a random training view is drawn from; each transform is applied with probability `p`
    (None switches one off). The order is speed, pitch, noise, gain."""

    speed: tuple[float, float] | None = (0.9, 1.1)
    pitch_semitones: tuple[float, float] | None = (-2.0, 2.0)
    snr_db: tuple[float, float] | None = (10.0, 30.0)
    gain_db: tuple[float, float] | None = (-6.0, 6.0)
    p: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.p <= 1:
            raise ConfigError(f"AudioAugment.p is a probability in [0, 1]; got {self.p}")
        for name in ("speed", "pitch_semitones", "snr_db", "gain_db"):
            bounds = getattr(self, name)
            if bounds is not None and (len(bounds) != 2 or bounds[0] > bounds[1]):
                raise ConfigError(f"AudioAugment.{name} must be (low, high) with low <= high; got {bounds}")
        if self.speed is not None and self.speed[0] <= 0:
            raise ConfigError(f"AudioAugment.speed factors must be positive; got {self.speed}")

    def to_dict(self) -> JSONObject:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def augment_waveform(wave: np.ndarray, seed: Seed, config: AudioAugment | None = None) -> np.ndarray:
    """One random view of `wave` drawn from `config`'s ranges; the same seed gives the same view.

    Every transform is in relative units (factors, semitones, decibels), so no sample rate is needed.
    """
    cfg = config or AudioAugment()
    rng = _rng(seed)
    x = _mono(wave)
    # draw every number in a fixed order, whether or not its transform applies, so that switching
    # one transform off does not change the draws of the others
    draws = {name: (rng.random(), rng.random()) for name in ("speed", "pitch_semitones", "snr_db", "gain_db")}
    noise_rng = np.random.default_rng(rng.integers(0, 2**63))

    def pick(name: str) -> float | None:
        bounds = getattr(cfg, name)
        apply, u = draws[name]
        if bounds is None or apply >= cfg.p:
            return None
        return float(bounds[0] + u * (bounds[1] - bounds[0]))

    if (factor := pick("speed")) is not None:
        x = speed_perturb(x, factor)
    if (semitones := pick("pitch_semitones")) is not None:
        x = pitch_shift(x, semitones)
    if (snr := pick("snr_db")) is not None:
        x = add_noise(x, snr, noise_rng)
    if (gain := pick("gain_db")) is not None:
        x = apply_gain(x, gain)
    return x if x is not wave else x.copy()
