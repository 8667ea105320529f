"""Reading audio clips: decode, mix down, resample, check, and crop or pad to a fixed length.

Every audio backbone reads its inputs through `load_audio` (files) or `load_audio_input` (files,
or waveforms already in memory), so a clip is turned into samples the same way at training,
predict and export time. The settings live in one `AudioLoadConfig`, which backbones put in their
`preprocess_config()`.

Decoding goes through soundfile (libsndfile): WAV, FLAC and OGG/Vorbis. Resampling uses
`scipy.signal.resample_poly` with the exact rational ratio of the two rates (44.1 kHz → 16 kHz
is 160/441), a polyphase FIR filter that neither aliases nor drifts in length.

With `vad` set, silence is trimmed with Silero VAD (`transferkit.data.vad`) after resampling and
before cropping or padding to `duration_s`: leading and trailing silence ("edges"), or every pause
("all").

A clip that cannot be used raises `InputError` naming the file, so that callers can skip it and
count it: zero-byte, corrupt or of an unknown format, empty (a header and no samples), shorter
than `min_duration_s`, or silent (every sample below `silence_threshold` in magnitude). Reading
never prints numpy's RuntimeWarnings: a clip that would raise one is reported as what it is.
`sniff_audio` is the cheap check a folder scan makes (the header only).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from transferkit.errors import ConfigError, InputError
from transferkit.jsontypes import JSONObject

#: File extensions scanned as audio (what soundfile decodes on every platform).
AUDIO_EXTENSIONS: frozenset[str] = frozenset({".wav", ".flac", ".ogg"})

#: Peak magnitude below which a clip counts as silent (-80 dBFS; 16-bit PCM's step is ~3e-5).
DEFAULT_SILENCE_THRESHOLD = 1e-4
#: Clips shorter than this (seconds) are rejected: no frontend can say anything about them.
DEFAULT_MIN_DURATION_S = 0.1


@dataclass(frozen=True)
class AudioLoadConfig:
    """How a clip becomes a waveform. JSON-able through `to_dict()`.

    `duration_s=None` keeps each clip's own length; a number crops longer clips (keeping the
    centre) and zero-pads shorter ones at the end, so every sample has the same length.

    `vad`: "off", "edges" (trim leading and trailing silence) or "all" (cut inner pauses too), with
    Silero VAD at `vad_threshold` (speech probability), keeping `vad_pad_s` around the speech.
    """

    sample_rate: int = 16000
    duration_s: float | None = None
    min_duration_s: float = DEFAULT_MIN_DURATION_S
    silence_threshold: float = DEFAULT_SILENCE_THRESHOLD
    crop: Literal["center", "start"] = "center"
    vad: Literal["off", "edges", "all"] = "off"
    vad_threshold: float = 0.5
    vad_pad_s: float = 0.1

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ConfigError(f"sample_rate must be a positive number of Hz, got {self.sample_rate}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ConfigError(
                f"duration_s must be positive or None (keep each clip's length), got {self.duration_s}"
            )
        if self.min_duration_s < 0:
            raise ConfigError(f"min_duration_s must be >= 0, got {self.min_duration_s}")
        if self.crop not in ("center", "start"):
            raise ConfigError(f"crop must be 'center' or 'start', got {self.crop!r}")
        if self.vad not in ("off", "edges", "all"):
            raise ConfigError(
                f"vad must be 'off', 'edges' (trim leading and trailing silence) or 'all' (also cut inner "
                f"pauses); got {self.vad!r}"
            )
        if not 0 < self.vad_threshold < 1:
            raise ConfigError(f"vad_threshold is a speech probability in (0, 1); got {self.vad_threshold}")
        if self.vad_pad_s < 0:
            raise ConfigError(f"vad_pad_s must be >= 0 seconds; got {self.vad_pad_s}")

    @property
    def num_samples(self) -> int | None:
        """The fixed clip length in samples, or None when clips keep their own length."""
        return None if self.duration_s is None else round(self.duration_s * self.sample_rate)

    def to_dict(self) -> JSONObject:
        """JSON-able description, including the fixed steps (mix-down, resampler, padding).

        The VAD settings appear only when VAD is on, so that configs (and the feature-cache keys and
        bundles made from them) without VAD read exactly as they did before VAD existed.
        """
        values = asdict(self)
        if self.vad == "off":
            for key in ("vad", "vad_threshold", "vad_pad_s"):
                values.pop(key)
        else:
            values["vad_model"] = "silero_vad_16k_sequence.onnx"
        return {
            **values,
            "mixdown": "mean",
            "resampler": "scipy.signal.resample_poly",
            "pad": "zeros-at-end",
        }


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a file to float32 samples [num_samples, channels] and its sample rate.

    Raises `InputError` naming the file when it is missing, empty, of an unknown format or corrupt.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"audio file '{p}' does not exist")
    if p.suffix.lower() not in AUDIO_EXTENSIONS:
        raise InputError(
            f"audio file '{p}' has an unknown format '{p.suffix}'; expected one of "
            f"{', '.join(sorted(AUDIO_EXTENSIONS))}. Convert it (e.g. ffmpeg -i in.mp3 out.flac)."
        )
    if p.stat().st_size == 0:
        raise InputError(f"audio file '{p}' is empty (0 bytes)")
    import soundfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data, rate = soundfile.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile reports corrupt and mislabelled files as RuntimeErrors
        raise InputError(f"audio file '{p}' cannot be decoded ({type(exc).__name__}: {exc})") from exc
    if data.shape[0] == 0:
        raise InputError(f"audio file '{p}' is empty: it has a header but no samples (0 frames)")
    return data, int(rate)


def sniff_audio(path: str | Path) -> str | None:
    """Why `path` is certainly not a usable clip, read from its header alone, or None when it may be.

    Catches empty files, files libsndfile cannot open (another type, corrupt headers) and clips of
    0 frames. Silence and length are judged when the samples are read.
    """
    p = Path(path)
    try:
        if p.stat().st_size == 0:
            return "empty file (0 bytes), not audio"
    except OSError as exc:
        return f"cannot read the file ({exc.strerror or exc})"
    import soundfile

    try:
        info = soundfile.info(str(p))
    except Exception as exc:
        return f"cannot be decoded as audio ({type(exc).__name__}: {exc})"
    if info.frames == 0:
        return "empty: it has a header but no samples (0 frames)"
    if info.samplerate <= 0:
        return f"invalid sample rate {info.samplerate}"
    return None


def resample(wave: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample a mono waveform with a polyphase filter at the exact ratio target/source."""
    if source_rate == target_rate:
        return wave
    from scipy.signal import resample_poly

    ratio = Fraction(int(target_rate), int(source_rate))
    out = resample_poly(wave.astype(np.float64), ratio.numerator, ratio.denominator)
    return out.astype(np.float32)


def fit_length(wave: np.ndarray, num_samples: int, crop: str = "center") -> np.ndarray:
    """Crop (keeping the centre, or the start) or zero-pad at the end to exactly `num_samples`."""
    n = wave.shape[0]
    if n > num_samples:
        start = (n - num_samples) // 2 if crop == "center" else 0
        return wave[start : start + num_samples]
    if n < num_samples:
        return np.pad(wave, (0, num_samples - n))
    return wave


def prepare_waveform(
    wave: np.ndarray | torch.Tensor,
    source_rate: int,
    config: AudioLoadConfig,
    name: str = "waveform",
    *,
    channels_last: bool | None = None,
) -> torch.Tensor:
    """Samples already in memory ([n] or [n, channels]) → checked mono float32 tensor [n'].

    `name` is used in error messages (the file name, when the samples came from a file).
    `channels_last`: the layout of a 2-D array when known (soundfile's is [n, channels]); None
    guesses that a [channels, n] array (torchaudio's layout) has at most 8 rows and more columns.
    """
    data = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        raise InputError(f"{name}: expected real-valued samples, got an array of {data.dtype}")
    if data.ndim == 2:
        if channels_last is None:
            channels_last = not (data.shape[0] < data.shape[1] and data.shape[0] <= 8)
        if not channels_last:
            data = data.T
        if data.shape[1] == 0:
            raise InputError(f"{name}: has no channels")
        if data.shape[0] == 0:
            raise InputError(f"{name}: is empty (no samples)")
        with np.errstate(all="ignore"):
            data = data.mean(axis=1)
    elif data.ndim != 1:
        raise InputError(f"{name}: expected samples of shape [n] or [n, channels], got {list(data.shape)}")
    if data.shape[0] == 0:
        raise InputError(f"{name}: is empty (no samples)")
    if source_rate <= 0:
        raise InputError(f"{name}: invalid sample rate {source_rate}")
    if not np.all(np.isfinite(data)):
        raise InputError(f"{name}: contains NaN or infinite samples")
    with np.errstate(all="ignore"):
        data = data.astype(np.float32, copy=False)
    if not np.all(np.isfinite(data)):  # float64 values beyond float32's range
        raise InputError(f"{name}: has samples too large for 32-bit floats (|x| > 3.4e38)")
    duration = data.shape[0] / source_rate
    if duration < config.min_duration_s:
        raise InputError(
            f"{name}: too short ({duration:.3f} s); clips must last at least {config.min_duration_s} s"
        )
    peak = float(np.max(np.abs(data)))
    if peak < config.silence_threshold:
        raise InputError(
            f"{name}: silent (peak magnitude {peak:.2e} is below the silence threshold "
            f"{config.silence_threshold:.0e})"
        )
    data = resample(data, source_rate, config.sample_rate)
    if config.vad != "off":
        from transferkit.data.vad import trim_silence

        data = trim_silence(
            data, config.sample_rate, config.vad, threshold=config.vad_threshold, pad_s=config.vad_pad_s, name=name,
            resample=resample,
        )
    if config.num_samples is not None:
        data = fit_length(data, config.num_samples, config.crop)
    return torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))


def load_audio(
    path: str | Path,
    sample_rate: int = 16000,
    duration_s: float | None = None,
    *,
    min_duration_s: float = DEFAULT_MIN_DURATION_S,
    silence_threshold: float = DEFAULT_SILENCE_THRESHOLD,
    crop: Literal["center", "start"] = "center",
) -> torch.Tensor:
    """Read an audio file as a mono float32 waveform at `sample_rate`, of `duration_s` if given.

    Raises `InputError` naming the file for a zero-byte, corrupt, unknown-format, silent or too
    short clip.
    """
    config = AudioLoadConfig(sample_rate, duration_s, min_duration_s, silence_threshold, crop)
    return load_audio_input(path, config)


def load_audio_input(item: object, config: AudioLoadConfig) -> torch.Tensor:
    """What audio backbones' `load` takes: a path, a `(samples, sample_rate)` pair, or samples.

    Bare samples (numpy array or tensor) are taken to be at `config.sample_rate` already.
    """
    if isinstance(item, str | Path):
        data, rate = read_audio(item)
        return prepare_waveform(data, rate, config, name=f"audio file '{item}'", channels_last=True)
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], int | np.integer):
        return prepare_waveform(item[0], int(item[1]), config)
    if isinstance(item, np.ndarray | torch.Tensor):
        return prepare_waveform(item, config.sample_rate, config)
    raise InputError(
        f"expected an audio file path, a (samples, sample_rate) pair or an array of samples; "
        f"got {type(item).__name__}"
    )
