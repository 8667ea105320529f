"""Trimming silence from clips with Silero VAD, run on onnxruntime (no torch).

Silero VAD (Silero Team, 2021–2025, MIT licence) gives a speech probability for every 32 ms frame
of 16 kHz audio: 512 samples, each prefixed with the 64 samples before it, through a small
convolutional front end and an LSTM whose state runs through the clip. Its weights ship in the
`silero-vad` wheel; the "sequence" export (`silero_vad_16k_sequence.onnx`) computes the
probabilities of up to 512 frames (16 s) per call, the same numbers as the streaming model frame by
frame. The file is found without importing `silero_vad`, whose import sets torch's thread count to
1 for the whole process.

Frames become speech segments as silero's `get_speech_timestamps` turns them (its defaults): a
segment starts at a frame whose probability reaches `threshold`; it ends where the probability stays
below `threshold - 0.15` for `min_silence_s`; segments shorter than `min_speech_s` are dropped; each
kept segment is widened by `pad_s` on both sides (overlaps merged).

`trim_silence` keeps, with mode "edges", everything from the first segment's start to the last
one's end (leading and trailing silence cut), and with mode "all" only the segments, joined (inner
pauses cut too). A clip in which no speech is found is returned whole: trimming never empties a clip
(VAD is a speech detector; on a clip of other sounds it finds nothing to keep).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from transferkit.errors import ConfigError, InputError

if TYPE_CHECKING:
    import onnxruntime

VAD_MODES = ("off", "edges", "all")
VadMode = Literal["off", "edges", "all"]

VAD_RATE = 16000
FRAME = 512  # samples per probability (32 ms)
CONTEXT = 64  # samples of the previous frame prefixed to each frame
BLOCK = 512  # frames per onnxruntime call
VAD_MODEL = ("silero_vad", "data/silero_vad_16k_sequence.onnx")

_sessions: dict[int, onnxruntime.InferenceSession] = {}
_lock = threading.Lock()


def vad_model_file() -> Path | None:
    """The sequence ONNX model inside the `silero-vad` wheel (without importing the package)."""
    from transferkit.packages import package_file

    return package_file(*VAD_MODEL)


def _session() -> onnxruntime.InferenceSession:
    """One onnxruntime session per process (DataLoader workers each build their own)."""
    pid = os.getpid()
    with _lock:
        if pid not in _sessions:
            path = vad_model_file()
            if path is None:
                raise ConfigError(
                    "silence trimming (vad) needs the Silero VAD model from the 'silero-vad' wheel, which is "
                    "not installed. Install it with: pip install silero-vad  (or transferkit[zoo]), or set vad='off'"
                )
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            # a session inherited through fork stays in the dict, unused (never destroyed in the child)
            _sessions[pid] = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        return _sessions[pid]


def speech_probabilities(wave: np.ndarray) -> np.ndarray:
    """Speech probability of each 32 ms frame of a 16 kHz mono clip: [ceil(n / 512)] float32."""
    x = np.ascontiguousarray(wave, dtype=np.float32).reshape(-1)
    n_frames = -(-len(x) // FRAME)
    if n_frames == 0:
        return np.zeros(0, dtype=np.float32)
    padded = np.zeros(n_frames * FRAME, dtype=np.float32)
    padded[: len(x)] = x
    frames = padded.reshape(n_frames, FRAME)
    context = np.zeros((n_frames, CONTEXT), dtype=np.float32)
    context[1:] = frames[:-1, -CONTEXT:]
    inputs = np.concatenate([context, frames], axis=1)
    session = _session()
    h = np.zeros((1, 1, 128), dtype=np.float32)
    c = np.zeros((1, 1, 128), dtype=np.float32)
    out = []
    for start in range(0, n_frames, BLOCK):
        feed = {"input": inputs[start : start + BLOCK], "h": h, "c": c}
        probs, h, c = session.run(["speech_probs", "hn", "cn"], feed)
        out.append(np.asarray(probs, dtype=np.float32).reshape(-1))
    return np.concatenate(out)


def speech_segments(
    probs: np.ndarray,
    num_samples: int,
    *,
    threshold: float = 0.5,
    min_speech_s: float = 0.25,
    min_silence_s: float = 0.1,
    pad_s: float = 0.03,
) -> list[tuple[int, int]]:
    """[start, end) sample ranges of speech at 16 kHz from frame probabilities (see the module doc)."""
    low = max(threshold - 0.15, 0.01)
    min_speech, min_silence, pad = (round(s * VAD_RATE) for s in (min_speech_s, min_silence_s, pad_s))
    raw: list[tuple[int, int]] = []
    start: int | None = None
    quiet_from: int | None = None  # where the probability last fell below `low` inside a segment
    for i, p in enumerate(probs.tolist()):
        at = i * FRAME
        if start is None:
            if p >= threshold:
                start, quiet_from = at, None
            continue
        if p >= threshold:
            quiet_from = None
        elif p < low:
            if quiet_from is None:
                quiet_from = at
            if at - quiet_from >= min_silence:
                if quiet_from - start > min_speech:
                    raw.append((start, quiet_from))
                start, quiet_from = None, None
    if start is not None and num_samples - start > min_speech:
        raw.append((start, num_samples))
    merged: list[tuple[int, int]] = []
    for s, e in raw:
        s, e = max(0, s - pad), min(num_samples, e + pad)
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def trim_silence(
    wave: np.ndarray,
    sample_rate: int,
    mode: VadMode = "edges",
    *,
    threshold: float = 0.5,
    pad_s: float = 0.1,
    name: str = "waveform",
    resample: Callable[[np.ndarray, int, int], np.ndarray] | None = None,
) -> np.ndarray:
    """`wave` (mono, any rate) without its leading/trailing ("edges") or all ("all") silence.

    A clip not at 16 kHz is detected on a copy resampled with `resample(wave, rate, 16000)`.
    """
    if mode not in VAD_MODES:
        raise ConfigError(f"vad must be one of {', '.join(VAD_MODES)}; got {mode!r}")
    if mode == "off" or len(wave) == 0:
        return wave
    detect = wave
    if sample_rate != VAD_RATE:
        if resample is None:
            raise ConfigError(f"silence trimming detects speech at {VAD_RATE} Hz; this clip is at {sample_rate} Hz "
                              "and no resampler was given")
        detect = resample(wave, sample_rate, VAD_RATE)
    try:
        probs = speech_probabilities(detect)
    except ConfigError:
        raise
    except Exception as exc:  # onnxruntime failing on one clip: skip the clip, name it
        raise InputError(f"{name}: voice activity detection failed ({type(exc).__name__}: {exc})") from exc
    segments = speech_segments(probs, len(detect), threshold=threshold, pad_s=pad_s)
    if not segments:
        return wave
    scale = sample_rate / VAD_RATE
    spans = [(round(s * scale), min(len(wave), round(e * scale))) for s, e in segments]
    if mode == "edges":
        return wave[spans[0][0] : spans[-1][1]]
    return np.concatenate([wave[s:e] for s, e in spans])
