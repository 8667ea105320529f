"""Audio transfer end to end: synthesized sound classes in WAV/FLAC/OGG, the CLI, bad clips skipped and counted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from transferkit.backbones.audio import ge2e_weight_file

pytestmark = pytest.mark.skipif(ge2e_weight_file() is None, reason="resemblyzer wheel (GE2E weights) not installed")

SR = 16000
KINDS = ("whistle", "hum", "hiss", "chirp")
FORMATS = ("wav", "flac", "ogg")


def synth(kind: str, rng: np.random.Generator, seconds: float) -> np.ndarray:
    """One clip of a sound class: a warbling whistle, a low harmonic hum, bright hiss, or a rising chirp."""
    t = np.arange(int(SR * seconds)) / SR
    if kind == "whistle":
        x = np.sin(2 * np.pi * rng.uniform(900, 1500) * t + 3 * np.sin(2 * np.pi * rng.uniform(3, 7) * t))
    elif kind == "hum":
        f0 = rng.uniform(90, 160)
        x = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) / k for k in range(1, 12))
    elif kind == "hiss":
        x = np.diff(rng.standard_normal(len(t)), prepend=0.0)
    else:
        f1, f2 = rng.uniform(200, 400), rng.uniform(2000, 4000)
        x = np.sin(2 * np.pi * (f1 * t + (f2 - f1) * t**2 / (2 * seconds)))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(1, 3) * t)) + 0.02 * rng.standard_normal(len(t))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def make_clips(root: Path, n_per_class: int, seed: int, bad: bool = True) -> Path:
    """root/<kind>/<i>.{wav,flac,ogg} (16 or 22.05 kHz, some stereo), plus five clips that cannot be used."""
    rng = np.random.default_rng(seed)
    for kind in KINDS:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            wave = synth(kind, rng, rng.uniform(1.0, 2.0))
            rate = SR if i % 2 else 22050
            if rate != SR:
                wave = synth(kind, rng, len(wave) / SR)[: int(len(wave) * rate / SR)]
            if i % 4 == 3:
                wave = np.stack([wave, wave * 0.8], axis=1)  # stereo: mixed down
            sf.write(root / kind / f"{i:02d}.{FORMATS[i % 3]}", wave, rate)
    if bad:
        (root / "hum" / "empty.wav").write_bytes(b"")
        sf.write(root / "hum" / "silent.wav", np.zeros(SR, np.float32), SR)
        sf.write(root / "hiss" / "short.flac", np.full(400, 0.1, np.float32), SR)
        (root / "chirp" / "corrupt.ogg").write_bytes(b"OggS but not really" * 20)
        (root / "chirp" / "clip.mp3").write_bytes(b"ID3 unknown format")
    return root


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the LSTM thrashes under contention with more threads
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clips(tmp_path_factory.mktemp("audio") / "clips", n_per_class=12, seed=0)


def test_cli_audio_fit_predict_skips_and_counts_bad_clips(clips: Path, tmp_path: Path) -> None:
    from transferkit.commands import app

    runner = CliRunner()
    out = tmp_path / "runs" / "clips"
    result = runner.invoke(app, ["fit", str(clips), "--modality", "audio", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["backbone"] == "ge2e-speaker-encoder+mfcc"  # the audio default: GE2E beside MFCC statistics
    print(f"audio test accuracy (GE2E + MFCC features, 4 classes, chance 0.25): {summary['accuracy']:.3f}")
    assert summary["accuracy"] >= 0.75
    assert summary["skipped"] == 5  # empty, silent, too short, corrupt, unknown format (.mp3 not scanned)
    manifest = json.loads((out / "transferkit.json").read_text())
    reasons = " ".join(manifest["metrics"]["skipped"].values())
    for word in ("empty", "silent", "too short", "cannot be decoded", "'.mp3'"):
        assert word in reasons, word

    result = runner.invoke(app, ["predict", str(out), str(clips / "hum"), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout[result.stdout.index("["):result.stdout.rindex("]") + 1])
    good = [r for r in rows if r["label"] is not None]
    bad = [r for r in rows if r["label"] is None]
    assert len(bad) == 2 and all(r["error"] for r in bad)  # empty.wav and silent.wav, said why
    assert np.mean([r["label"] == "hum" for r in good]) >= 0.75


def test_modality_is_guessed_from_a_folder_of_clips(clips: Path) -> None:
    from transferkit.options import FitOptions, resolve

    resolved = resolve(FitOptions.from_values({"data": clips}))
    assert resolved.modality == "audio" and resolved.backbone == "ge2e+mfcc"


def test_python_api_and_bundle_round_trip(clips: Path, tmp_path: Path) -> None:
    from transferkit import TransferClassifier
    from transferkit import load as load_model
    from transferkit.data import load_dataset

    data = load_dataset(clips, modality="audio")
    clf = TransferClassifier(backbone="ge2e", cache_dir=tmp_path / "cache", progress=False).fit(data)
    assert len(clf.fit_report_.skipped) == 4  # the .mp3 was never scanned; listed in data.skipped
    assert any(".mp3" in p for p in data.skipped)
    sample = [str(clips / kind / "00.wav") for kind in KINDS]
    clf.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m", cache_dir=False)
    np.testing.assert_allclose(loaded.predict_proba(sample), clf.predict_proba(sample), atol=1e-4)
