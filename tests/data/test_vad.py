"""Silence trimming with Silero VAD: the audio-loading option every audio backbone gets."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from transferkit.backbones import create_backbone
from transferkit.backbones.audio import audio_config_from_dict
from transferkit.cache import FeatureCache
from transferkit.data.audio_clips import AudioLoadConfig, load_audio_input, resample
from transferkit.data.vad import speech_probabilities, speech_segments, trim_silence, vad_model_file
from transferkit.errors import ConfigError

SR = 16000
pytestmark = pytest.mark.skipif(vad_model_file() is None, reason="silero-vad wheel not installed")
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed; `make test` installs it")


def voice(seed: int, seconds: float = 1.2) -> np.ndarray:
    """A buzzy, vowel-like voice (harmonics of a wavering 210 Hz pitch under three formants,
    with a syllable-rate loudness envelope): Silero hears it as speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    f0 = 210.0 * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = np.zeros_like(t)
    for k in range(1, 33):
        gain = sum(np.exp(-(((k * 210.0 - c) / w) ** 2)) for c, w in [(400, 100), (2200, 250), (3000, 300)]) + 0.02
        x += gain / np.sqrt(k) * np.sin(k * phase + rng.uniform(0, 6))
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(2, 5) * t)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def padded(speech: np.ndarray, lead_s: float, trail_s: float, seed: int, noise: float = 0.002) -> np.ndarray:
    """`speech` between stretches of silence, with a little white noise over the whole clip."""
    rng = np.random.default_rng(seed)
    clip = np.concatenate([np.zeros(int(lead_s * SR)), speech, np.zeros(int(trail_s * SR))])
    return (clip + noise * rng.standard_normal(len(clip))).astype(np.float32)


def locate(clip: np.ndarray, piece: np.ndarray) -> int:
    """Where `piece` (a contiguous stretch of `clip`) starts in it."""
    for start in np.flatnonzero(clip == piece[0]):
        if np.array_equal(clip[start : start + len(piece)], piece):
            return int(start)
    raise AssertionError("the trimmed clip is not a stretch of the original")


def flite_word(word: str, voice_name: str, tmp_path: Path) -> np.ndarray:
    path = tmp_path / f"{voice_name}-{word}.wav"
    subprocess.run(["flite", "-voice", voice_name, "-t", word, "-o", str(path)], check=True, capture_output=True)
    return load_audio_input(str(path), AudioLoadConfig()).numpy()


def test_trimming_cuts_the_silence_and_keeps_the_speech() -> None:
    speech = voice(0)
    clip = padded(speech, 1.0, 1.5, seed=1)
    trimmed = load_audio_input(clip, AudioLoadConfig(vad="edges")).numpy()
    assert len(trimmed) < len(speech) + 2 * 0.1 * SR + 0.1 * SR  # the speech, its padding, a frame
    assert len(trimmed) > 0.7 * len(speech)
    # the kept stretch is the speech: it holds (nearly) all of the clip's energy above the noise
    start = locate(clip, trimmed)
    energy = clip.astype(np.float64) ** 2
    assert energy[start : start + len(trimmed)].sum() > 0.95 * energy.sum()
    assert start < SR and start + len(trimmed) > SR + 0.7 * len(speech)


def test_same_clip_same_seed_same_result() -> None:
    a = load_audio_input(padded(voice(3), 0.8, 0.6, seed=7), AudioLoadConfig(vad="edges"))
    b = load_audio_input(padded(voice(3), 0.8, 0.6, seed=7), AudioLoadConfig(vad="edges"))
    assert torch.equal(a, b)
    c = load_audio_input(padded(voice(3), 0.8, 0.6, seed=8), AudioLoadConfig(vad="edges"))
    assert c.shape != a.shape or not torch.equal(a, c)


def test_all_mode_cuts_inner_pauses_too() -> None:
    clip = padded(np.concatenate([voice(0, 0.8), np.zeros(SR), voice(1, 0.8)]), 0.5, 0.5, seed=2)
    edges = load_audio_input(clip, AudioLoadConfig(vad="edges"))
    everything = load_audio_input(clip, AudioLoadConfig(vad="all"))
    assert len(everything) < len(edges) - 0.7 * SR


def test_a_clip_without_speech_is_kept_whole() -> None:
    t = np.arange(2 * SR) / SR
    beep = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    assert speech_probabilities(beep).max() < 0.5
    np.testing.assert_array_equal(trim_silence(beep, SR, "edges"), beep)


def test_other_sample_rates_are_trimmed_at_their_own_rate(tmp_path: Path) -> None:
    from scipy.signal import resample_poly

    clip = padded(voice(4), 1.0, 1.0, seed=3)
    at_44k = resample_poly(clip, 441, 160).astype(np.float32)
    path = tmp_path / "clip.wav"
    sf.write(str(path), at_44k, 44100)
    native = trim_silence(at_44k, 44100, "edges", resample=resample)
    assert len(at_44k) * 0.3 < len(native) < len(at_44k) * 0.6
    loaded = load_audio_input(str(path), AudioLoadConfig(vad="edges"))  # resampled to 16 kHz, then trimmed
    assert abs(len(loaded) / SR - len(native) / 44100) < 0.05


def test_segments_agree_with_silero_get_speech_timestamps() -> None:
    """Our runner (the sequence ONNX model on onnxruntime) and silero's own function, on the same clip
    with silero's default padding, find the same speech."""
    threads = torch.get_num_threads()
    try:
        from silero_vad import get_speech_timestamps, load_silero_vad
    finally:
        torch.set_num_threads(threads)  # importing silero_vad sets torch to one thread
    clip = padded(np.concatenate([voice(5), np.zeros(SR // 2), voice(6, 0.9)]), 0.7, 0.9, seed=4)
    model = load_silero_vad(onnx=True)
    try:
        expected = get_speech_timestamps(torch.from_numpy(clip), model, speech_pad_ms=0)
    finally:
        torch.set_num_threads(threads)
    ours = speech_segments(speech_probabilities(clip), len(clip), pad_s=0.0)
    assert [(s["start"], s["end"]) for s in expected] == ours


@needs_flite
def test_flite_words_are_trimmed_without_losing_the_word(tmp_path: Path) -> None:
    for name in ("slt", "awb"):
        for word in ("seven", "zero"):
            speech = flite_word(word, name, tmp_path)
            clip = padded(speech, 1.2, 1.0, seed=5)
            trimmed = load_audio_input(clip, AudioLoadConfig(vad="edges")).numpy()
            assert len(trimmed) < len(speech) + 0.3 * SR
            energy = clip.astype(np.float64) ** 2
            loud = np.flatnonzero(np.abs(clip) > 0.05 * np.abs(clip).max())
            start = locate(clip, trimmed)
            assert start <= loud[0] + 0.08 * SR and start + len(trimmed) >= loud[-1] - 0.05 * SR, (name, word)
            assert energy[start : start + len(trimmed)].sum() > 0.95 * energy.sum()


# -- the option in the preprocessing config -------------------------------------------------------


def test_vad_settings_are_in_the_config_only_when_on() -> None:
    off = AudioLoadConfig().to_dict()
    assert "vad" not in off  # configs, cache keys and bundles without VAD read as before VAD existed
    on = AudioLoadConfig(vad="edges", vad_threshold=0.6).to_dict()
    assert on["vad"] == "edges" and on["vad_threshold"] == 0.6
    assert audio_config_from_dict(json.loads(json.dumps(on))) == AudioLoadConfig(vad="edges", vad_threshold=0.6)
    for bad in ({"vad": True}, {"vad": "yes"}, {"vad": "edges", "vad_threshold": 1.5}, {"vad_pad_s": -1.0}):
        with pytest.raises(ConfigError):
            AudioLoadConfig(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["ge2e-speaker-encoder", "efficientnet_lite0+logmel"])
def test_every_audio_backbone_takes_it_and_saves_it(name: str, tmp_path: Path) -> None:
    whole = create_backbone(name, weights="random", audio=AudioLoadConfig(vad="off"))
    trimmed = create_backbone(name, weights="random", audio=AudioLoadConfig(vad="all"))
    saved = json.loads(json.dumps(trimmed.preprocess_config()))
    assert saved["audio"]["vad"] == "all"
    whole.apply_preprocess_config(saved)  # a bundle's saved preprocessing is adopted
    assert whole.preprocess_config() == saved and whole.audio.vad == "all"
    cache = FeatureCache(tmp_path)
    fresh = create_backbone(name, weights="random", audio=AudioLoadConfig(vad="off"))
    assert cache.folder(fresh, "fp32") != cache.folder(trimmed, "fp32")  # part of the cache key
    clip = padded(voice(0), 1.0, 1.0, seed=0)
    assert len(trimmed.load(clip)) < 0.6 * len(fresh.load(clip))


def test_defaults_speech_models_trim_sound_models_do_not() -> None:
    """GE2E (a speech model; resemblyzer trims too) trims the edges by default; sound-event models
    keep clips whole, since trimming to the speech would cut the other sounds of a clip."""
    assert create_backbone("ge2e-speaker-encoder", weights="random").audio.vad == "edges"
    assert create_backbone("efficientnet_lite0+logmel", weights="random").audio.vad == "off"
    old = create_backbone("ge2e-speaker-encoder", weights="random", audio=AudioLoadConfig(vad="off"))
    saved = json.loads(json.dumps(old.preprocess_config()))
    assert "vad" not in saved["audio"]  # what a bundle saved before VAD existed looks like
    restored = create_backbone("ge2e-speaker-encoder", weights="random")
    restored.apply_preprocess_config(saved)
    assert restored.audio.vad == "off"  # such a bundle predicts as it was trained: untrimmed


def test_vad_runs_without_importing_torch_audio_packages() -> None:
    code = (
        "import sys, numpy as np\n"
        "from transferkit.data.vad import speech_probabilities\n"
        "speech_probabilities(np.zeros(16000, np.float32))\n"
        "assert 'silero_vad' not in sys.modules and 'torchaudio' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
