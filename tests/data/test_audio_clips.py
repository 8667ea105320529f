"""Reading audio clips: formats, resampling, mix-down, fixed length, and every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from transferkit.data.audio_clips import (
    AUDIO_EXTENSIONS,
    AudioLoadConfig,
    load_audio,
    load_audio_input,
)
from transferkit.errors import ConfigError, InputError


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(wave: torch.Tensor, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave.numpy() * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[np.argmax(spectrum)])


def write(path: Path, data: np.ndarray, rate: int, **kwargs: object) -> Path:
    sf.write(str(path), data, rate, **kwargs)
    return path


def test_extensions() -> None:
    assert {".wav", ".flac", ".ogg"} == set(AUDIO_EXTENSIONS)


@pytest.mark.parametrize("rate", [44100, 8000, 22050, 16000])
def test_resampled_to_16k_and_the_tone_survives(tmp_path: Path, rate: int) -> None:
    freq = 1000.0 if rate == 8000 else 440.0
    path = write(tmp_path / "tone.wav", tone(freq, rate, 1.0), rate)
    wave = load_audio(path, sample_rate=16000)
    assert wave.dtype == torch.float32 and wave.ndim == 1
    assert len(wave) == 16000  # exactly one second at the new rate
    assert abs(peak_frequency(wave, 16000) - freq) < 2.0
    # amplitude survives the filter (no gain error away from the edges)
    assert float(wave[2000:-2000].abs().max()) == pytest.approx(0.5, abs=0.02)


def test_stereo_is_mixed_down(tmp_path: Path) -> None:
    left = tone(300, 16000, 0.5)
    stereo = np.stack([left, 0.5 * left], axis=1)
    wave = load_audio(write(tmp_path / "stereo.wav", stereo, 16000))
    np.testing.assert_allclose(wave.numpy(), 0.75 * left, atol=1e-4)


@pytest.mark.parametrize("suffix", [".flac", ".ogg"])
def test_flac_and_ogg(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path / f"clip{suffix}", tone(500, 22050, 0.5), 22050)
    wave = load_audio(path)
    assert len(wave) == 8000
    assert abs(peak_frequency(wave, 16000) - 500) < 3.0


def test_fixed_duration_crops_the_centre_and_pads_the_end(tmp_path: Path) -> None:
    ramp = np.linspace(-0.5, 0.5, 16000, dtype=np.float32)  # 1 s
    path = write(tmp_path / "ramp.wav", ramp, 16000, subtype="FLOAT")
    cropped = load_audio(path, duration_s=0.5)
    np.testing.assert_allclose(cropped.numpy(), ramp[4000:12000], atol=1e-6)
    padded = load_audio(path, duration_s=1.5)
    assert len(padded) == 24000
    np.testing.assert_allclose(padded[:16000].numpy(), ramp, atol=1e-6)
    assert float(padded[16000:].abs().max()) == 0.0


def test_in_memory_inputs() -> None:
    config = AudioLoadConfig(sample_rate=16000)
    at_8k = load_audio_input((tone(1000, 8000, 0.5), 8000), config)
    assert len(at_8k) == 8000 and abs(peak_frequency(at_8k, 16000) - 1000) < 3.0
    as_tensor = load_audio_input(torch.from_numpy(tone(200, 16000, 0.3)), config)
    assert len(as_tensor) == 4800
    channels_first = load_audio_input(np.stack([tone(200, 16000, 0.3)] * 2), config)
    assert channels_first.shape == (4800,)


def test_config_is_json_able_and_validated() -> None:
    import json

    cfg = AudioLoadConfig(duration_s=2.0).to_dict()
    assert json.loads(json.dumps(cfg)) == cfg
    with pytest.raises(ConfigError):
        AudioLoadConfig(duration_s=0)
    with pytest.raises(ConfigError):
        AudioLoadConfig(sample_rate=-1)


# -- bad inputs: each raises InputError naming the file ------------------------------------------


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.wav.*empty"):
        load_audio(path)


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x00\x01\x02this is not audio at all" * 10)
    with pytest.raises(InputError, match=r"broken\.wav.*cannot be decoded"):
        load_audio(path)


def test_text_file_named_flac(tmp_path: Path) -> None:
    path = tmp_path / "notes.flac"
    path.write_text("hello, I am a text file\n" * 50)
    with pytest.raises(InputError, match=r"notes\.flac"):
        load_audio(path)


def test_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp3"
    path.write_bytes(b"ID3" + bytes(200))
    with pytest.raises(InputError, match=r"clip\.mp3.*unknown format"):
        load_audio(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nowhere\.wav.*does not exist"):
        load_audio(tmp_path / "nowhere.wav")


@pytest.mark.parametrize("level", [0.0, 1e-6])
def test_silent_clip(tmp_path: Path, level: float) -> None:
    noise = (level * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    path = write(tmp_path / "quiet.wav", noise, 16000, subtype="FLOAT")
    with pytest.raises(InputError, match=r"quiet\.wav.*silent"):
        load_audio(path)


def test_too_short_clip(tmp_path: Path) -> None:
    path = write(tmp_path / "blip.wav", tone(440, 16000, 0.05), 16000)
    with pytest.raises(InputError, match=r"blip\.wav.*too short"):
        load_audio(path)
    # the minimum is configurable
    assert len(load_audio(path, min_duration_s=0.01)) == 800


def test_non_finite_and_wrong_types() -> None:
    config = AudioLoadConfig()
    bad = tone(440, 16000, 0.5)
    bad[10] = np.nan
    with pytest.raises(InputError, match="NaN"):
        load_audio_input(bad, config)
    with pytest.raises(InputError, match="expected an audio file path"):
        load_audio_input(12, config)


@pytest.mark.parametrize("channels", [1, 2])
def test_a_zero_frame_wav_says_it_is_empty_without_numpy_warnings(tmp_path: Path, channels: int) -> None:
    """Issue 12 item 10: a zero-frame WAV was reported as "NaN or infinite samples", and numpy's
    RuntimeWarnings (mean of an empty slice) leaked to the console."""
    import warnings

    from transferkit.data.audio_clips import sniff_audio

    path = write(tmp_path / "empty.wav", np.zeros((0, channels), np.float32), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning fails the test
        with pytest.raises(InputError, match=r"empty\.wav' is empty: it has a header but no samples"):
            load_audio(path)
        assert sniff_audio(path) == "empty: it has a header but no samples (0 frames)"
        for samples in (np.zeros((0, channels), np.float32), np.zeros(0, np.float32), np.zeros((channels, 0))):
            with pytest.raises(InputError, match=r"empty|no channels"):
                load_audio_input(samples, AudioLoadConfig())


def test_a_short_multichannel_file_is_not_mistaken_for_channels_first(tmp_path: Path) -> None:
    """Issue 12 item 10: a file's samples are [n, channels]; 3 frames of 4 channels are 3 samples,
    not 4 (the layout guess made for in-memory arrays is not applied to files)."""
    path = write(tmp_path / "tiny.wav", np.full((3, 4), 0.5, np.float32), 16000)
    assert load_audio(path, min_duration_s=0.0).shape == (3,)


def test_a_folder_scan_flags_empty_and_undecodable_clips(tmp_path: Path) -> None:
    """Issue 12 item 10: a folder scan looks at each clip's header and flags those that cannot be audio."""
    from transferkit.data import load_dataset

    for name in ("a/0.wav", "a/1.wav", "b/0.wav", "b/1.flac"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write(tmp_path / name, tone(440, 16000, 0.3), 16000)
    write(tmp_path / "b" / "2.wav", np.zeros((0, 1), np.float32), 16000)
    (tmp_path / "b" / "3.ogg").write_bytes(b"OggS but not really")
    data = load_dataset(tmp_path, modality="audio")
    assert data.labels == ["a", "a", "b", "b", "b", "b"]
    assert "0 frames" in data.unreadable[str(tmp_path / "b" / "2.wav")]
    assert "cannot be decoded as audio" in data.unreadable[str(tmp_path / "b" / "3.ogg")]
    data.validate_for_training()  # b still has 2 readable clips
