"""Audio backbones: the GE2E speaker encoder, and any image backbone over log-mel spectrograms.

Both read clips through `transferkit.data.audio_clips` (`load` → one mono float32 waveform at the
configured rate) and batch them as `{"waveform": [B, N], "lengths": [B]}`: clips are zero-padded
to the longest, and `lengths` keeps each clip's own length, so padding never leaks into a clip's
embedding. Spectrograms are computed inside `forward_features` with torch (on the model's device).

**GE2E speaker encoder** (Wan et al., "Generalized End-to-End Loss for Speaker Verification",
ICASSP 2018), with the weights Resemble AI trained and ship in the `resemblyzer` wheel
(`resemblyzer/pretrained.pt`, read with `weights_only=True`; the package itself is never imported).
As resemblyzer computes an utterance embedding:

1. the clip's volume is raised (never lowered) to -30 dBFS RMS;
2. a power mel spectrogram: 16 kHz, 25 ms Hann window (n_fft=400), 10 ms hop (160), 40 slaney
   mel bands, centred frames with zero padding, i.e. `librosa.feature.melspectrogram(sr=16000,
   n_fft=400, hop_length=160, n_mels=40)`. It is *not* log-compressed: the model was trained so;
3. the spectrogram is cut into partials of 160 frames (1.6 s); consecutive partials overlap by
   half (resemblyzer's default rate of 1.3 partials/s is 77 frames apart; we use 80). A last
   partial that covers less than 75 % of real audio is dropped unless it is the only one;
4. each partial goes through a 3-layer LSTM (40 → 256), the last layer's final hidden state
   through a linear layer 256 → 256 and a ReLU, and is L2-normalised;
5. the partial embeddings are averaged and L2-normalised again: the utterance embedding.

resemblyzer also trims long silences with a voice-activity detector (webrtcvad) before step 1.
Here silence is trimmed with Silero VAD instead (`AudioLoadConfig.vad`, see `transferkit.data.vad`),
by default at the clip's edges (see the note in `GE2ESpeakerEncoder`).

**Spectrogram images**: any image backbone applied to log-mel spectrograms rendered as a
3-channel image of the backbone's input size and normalised with its mean/std — the standard way
to carry ImageNet models to sound (e.g. Palanisamy et al. 2020, "Rethinking CNN models for audio
classification"; AST, Gong et al. 2021). Names are "<image backbone>+logmel"; `resolve_audio_name`
turns such a name into a factory for the registry.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from transferkit.backbones.contract import Backbone, ForwardFeatures, GraphParts, random_weights_id
from transferkit.backbones.registry import (
    HUB,
    PRETRAINED,
    RANDOM,
    BackboneEntry,
    register_backbone,
    register_resolver,
)
from transferkit.backbones.spec import LOGMEL, BackboneSpec
from transferkit.backbones.weights import load_state_dict, package_file, sha256_file
from transferkit.data.audio_clips import AudioLoadConfig, load_audio_input
from transferkit.errors import BackboneError, ConfigError
from transferkit.jsontypes import JSONObject

LOGMEL_SUFFIX = LOGMEL
#: a batch of clips: `{"waveform": [B, N], "lengths": [B]}` (what `collate` makes) or a bare [B, N] tensor
AudioBatch: TypeAlias = dict[str, torch.Tensor] | torch.Tensor
#: what an exported graph's rows need to become clip embeddings: each row's clip [R], and the clip count
_Owners: TypeAlias = tuple[torch.Tensor, int]

# ---------------------------------------------------------------------------------------------
# Mel frontend
# ---------------------------------------------------------------------------------------------


def hz_to_mel(freqs: np.ndarray) -> np.ndarray:
    """Slaney's auditory-toolbox mel scale (librosa's default, `htk=False`): linear below 1 kHz,
    logarithmic above."""
    freqs = np.asarray(freqs, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = freqs / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    log_region = freqs >= min_log_hz
    mels = np.where(log_region, min_log_mel + np.log(np.maximum(freqs, 1e-10) / min_log_hz) / logstep, mels)
    return mels


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> torch.Tensor:
    """Triangular mel filters [n_mels, n_fft // 2 + 1], slaney scale and slaney area norm.

    The same matrix as `librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)`: band
    edges equally spaced on the mel scale, each triangle scaled by 2 / its width in Hz so that every
    band has the same area (constant energy per band for white noise).
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_edges = mel_to_hz(np.linspace(hz_to_mel(np.array(fmin)), hz_to_mel(np.array(fmax)), n_mels + 2))
    widths = np.diff(mel_edges)
    ramps = mel_edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_edges[2 : n_mels + 2] - mel_edges[:n_mels]))[:, None]
    return torch.from_numpy(weights.astype(np.float32))


class MelSpectrogram(nn.Module):
    """Power mel spectrogram of a batch of waveforms [B, N] → [B, n_mels, 1 + N // hop].

    Centred frames with zero padding and a periodic Hann window, as librosa computes it. The
    window and filters are non-persistent buffers: no parameters, nothing in the state dict.
    """

    window: torch.Tensor
    filters: torch.Tensor

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 400,
        hop_length: int = 160,
        n_mels: int = 40,
        win_length: int | None = None,
        fmin: float = 0.0,
        fmax: float | None = None,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.win_length = win_length or n_fft
        self.fmin = fmin
        self.fmax = sample_rate / 2 if fmax is None else fmax
        self.register_buffer("window", torch.hann_window(self.win_length, periodic=True), persistent=False)
        self.register_buffer(
            "filters", mel_filterbank(sample_rate, n_fft, n_mels, fmin, self.fmax), persistent=False
        )

    def num_frames(self, num_samples: int) -> int:
        """Frames computed for a clip of `num_samples` (centred framing)."""
        return 1 + num_samples // self.hop_length

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        # always in fp32, even under a bf16 autocast: power spectra span ~10 orders of magnitude
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            return self._mel(waveform)

    def _mel(self, waveform: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            waveform.float(),
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()
        return torch.matmul(self.filters, power)

    @classmethod
    def from_config(cls, config: JSONObject) -> MelSpectrogram:
        """The frontend a `config()` describes (checks that it is one this class computes)."""
        fixed = {
            "window": "hann",
            "center": True,
            "pad_mode": "constant",
            "mel_scale": "slaney",
            "mel_norm": "slaney",
        }
        for key, value in fixed.items():
            if config.get(key, value) != value:
                raise BackboneError(f"cannot reproduce a mel frontend with {key}={config.get(key)!r}")
        return cls(
            int(config["sample_rate"]),
            n_fft=int(config["n_fft"]),
            hop_length=int(config["hop_length"]),
            n_mels=int(config["n_mels"]),
            win_length=int(config["win_length"]),
            fmin=float(config["fmin"]),
            fmax=float(config["fmax"]),
        )

    def config(self) -> JSONObject:
        """JSON-able description, part of the owning backbone's `preprocess_config()`."""
        return {
            "type": "mel_power",
            "sample_rate": self.sample_rate,
            "n_fft": self.n_fft,
            "win_length": self.win_length,
            "hop_length": self.hop_length,
            "window_ms": 1000 * self.win_length / self.sample_rate,
            "hop_ms": 1000 * self.hop_length / self.sample_rate,
            "n_mels": self.n_mels,
            "fmin": self.fmin,
            "fmax": self.fmax,
            "window": "hann",
            "center": True,
            "pad_mode": "constant",
            "mel_scale": "slaney",
            "mel_norm": "slaney",
        }


# ---------------------------------------------------------------------------------------------
# Shared pieces of the two audio backbones
# ---------------------------------------------------------------------------------------------


def collate_waveforms(samples: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Zero-pad waveforms to the longest; keep each one's length."""
    if len(samples) == 0:
        raise ConfigError("cannot collate an empty list of audio clips")
    lengths = torch.tensor([int(s.shape[-1]) for s in samples], dtype=torch.long)
    batch = torch.zeros(len(samples), int(lengths.max()), dtype=torch.float32)
    for i, s in enumerate(samples):
        batch[i, : s.shape[-1]] = s
    return {"waveform": batch, "lengths": lengths}


def audio_config_from_dict(config: JSONObject) -> AudioLoadConfig:
    """The `AudioLoadConfig` a saved `AudioLoadConfig.to_dict()` describes."""
    fields = {f.name for f in dataclasses.fields(AudioLoadConfig)}
    try:
        return AudioLoadConfig(**{k: config[k] for k in fields if k in config})
    except TypeError as exc:
        raise BackboneError(f"cannot read the saved audio settings {config} ({exc})") from exc


def _check_reproduced(backbone: Backbone, config: JSONObject) -> None:
    """After adopting a saved preprocessing, the backbone must describe itself exactly so."""
    if backbone.preprocess_config() != config:
        raise BackboneError(
            f"backbone '{backbone.name}' cannot reproduce the saved preprocessing {config}; "
            f"it preprocesses as {backbone.preprocess_config()}"
        )


def _unpack(batch: AudioBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """`{"waveform", "lengths"}` or a bare [B, N] tensor (every clip full length)."""
    if isinstance(batch, dict):
        return batch["waveform"], batch["lengths"]
    if isinstance(batch, torch.Tensor) and batch.ndim == 2:
        return batch, torch.full((batch.shape[0],), batch.shape[1], dtype=torch.long)
    raise ConfigError("audio batches are {'waveform': [B, N], 'lengths': [B]} or a [B, N] tensor")


def segment_mean(values: torch.Tensor, owner: torch.Tensor, count: int) -> torch.Tensor:
    """Average the rows of `values` [P, D] that belong to the same sample (`owner` [P] in 0..count-1)."""
    out = torch.zeros(count, values.shape[1], dtype=values.dtype, device=values.device)
    out.index_add_(0, owner, values)
    n = torch.bincount(owner, minlength=count).clamp_min(1).to(values.dtype)
    return out / n[:, None]


def window_starts(
    num_frames: int, window: int, hop: int, min_coverage: float, covered: float | None = None
) -> list[int]:
    """Start frames of windows of `window` frames every `hop` frames over `num_frames` frames.

    The last window may run past the end (it is zero-padded); it is kept only if real signal
    (`covered` frames, default `num_frames`) fills at least `min_coverage` of it, or if it is the
    only one. Mirrors resemblyzer's partial slicing.
    """
    covered = num_frames if covered is None else covered
    steps = max(1, num_frames - window + hop + 1)
    starts = list(range(0, steps, hop))
    if len(starts) > 1 and (covered - starts[-1]) / window < min_coverage:
        starts.pop()
    return starts


# ---------------------------------------------------------------------------------------------
# GE2E speaker encoder
# ---------------------------------------------------------------------------------------------

GE2E_NAME = "ge2e-speaker-encoder"
GE2E_WEIGHTS = ("resemblyzer", "pretrained.pt")


class WaveformBackbone(Backbone[torch.Tensor, AudioBatch]):
    """What every audio backbone shares: waveform loading (`self.audio`) and length-aware batching."""

    audio: AudioLoadConfig

    def load(self, item: object) -> torch.Tensor:
        """A path, `(samples, rate)` or samples → mono waveform at `self.audio`'s rate; `InputError`
        if unusable."""
        return load_audio_input(item, self.audio)

    def sample_loader(self) -> Callable[[object], torch.Tensor]:
        """`load` without the weights, for DataLoader workers."""
        return functools.partial(load_audio_input, config=self.audio)

    def collate(self, samples: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        return collate_waveforms(samples)

    def example_batch(self) -> dict[str, torch.Tensor]:
        """Two clips of noise, 2 s and 3 s (seeded; export traces shapes, parity checks use them)."""
        noise = torch.Generator().manual_seed(0)
        rate = self.audio.sample_rate
        return self.collate([0.1 * torch.randn(n * rate, generator=noise) for n in (2, 3)])


class _PartialEmbedder(nn.Module):
    """GE2E's LSTM + linear over mel partials [P, frames, 40] → [P, 256] (what an engine exports)."""

    def __init__(self, encoder: GE2ESpeakerEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, partials: torch.Tensor) -> torch.Tensor:
        return self.encoder.embed_partials(partials)


class GE2ESpeakerEncoder(WaveformBackbone):
    """Speaker embeddings (256-d, L2-normalised) from the GE2E LSTM encoder.

    The three LSTM layers are separate modules (a stacked `nn.LSTM` without dropout computes the
    same thing), so that gradual unfreezing can release them one at a time.

    Silence: resemblyzer cuts every silence longer than ~200 ms with webrtcvad. By default this
    encoder trims leading and trailing silence with Silero VAD (`vad="edges"`; `audio=
    AudioLoadConfig(vad="all")` cuts inner pauses too, `vad="off"` keeps clips whole). Measured on
    spoken words (flite, 5 voices, probe tested on unseen voices, `benchmarks/audio_words.py`): in
    noise, trimming raised accuracy by 9 to 23 points over 4 seeds; around digital silence it
    changed it by -8.5 to -1 points (3 seeds).
    """

    modality = "audio"
    num_features = 256

    def __init__(
        self,
        state_dict: dict[str, torch.Tensor] | None = None,
        weights_id: str = "random-init:0",
        *,
        audio: AudioLoadConfig | None = None,
        partial_frames: int = 160,
        partial_hop_frames: int = 80,
        min_coverage: float = 0.75,
        target_dbfs: float | None = -30.0,
    ) -> None:
        super().__init__()
        self.name = GE2E_NAME
        self.weights_id = weights_id
        self.audio = audio or AudioLoadConfig(sample_rate=16000, vad="edges")
        if self.audio.sample_rate != 16000:
            raise ConfigError(
                f"the GE2E encoder was trained on 16 kHz audio; got sample_rate={self.audio.sample_rate}"
            )
        if not 0 < partial_hop_frames <= partial_frames:
            raise ConfigError(f"partial_hop_frames must be in 1..{partial_frames}, got {partial_hop_frames}")
        if not 0 < min_coverage <= 1:
            raise ConfigError(f"min_coverage must be in (0, 1], got {min_coverage}")
        self.partial_frames = partial_frames
        self.partial_hop_frames = partial_hop_frames
        self.min_coverage = min_coverage
        self.target_dbfs = target_dbfs
        self.frontend = MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=40)
        self.lstm = nn.ModuleList(
            [nn.LSTM(40 if i == 0 else 256, 256, num_layers=1, batch_first=True) for i in range(3)]
        )
        self.linear = nn.Linear(256, 256)
        if state_dict is not None:
            self.load_state_dict(_ge2e_state_dict(state_dict))

    # -- preprocessing ------------------------------------------------------------------------
    def preprocess_config(self) -> JSONObject:
        return {
            "kind": "audio",
            "audio": self.audio.to_dict(),
            "frontend": self.frontend.config(),
            "volume_normalization": {"target_dbfs": self.target_dbfs, "increase_only": True},
            "partial_frames": self.partial_frames,
            "partial_hop_frames": self.partial_hop_frames,
            "min_coverage": self.min_coverage,
            "partial_pooling": "mean-then-l2",
            "vad_trim": self.audio.vad != "off",
        }

    def apply_preprocess_config(self, config: JSONObject) -> None:
        """Adopt a bundle's saved clip length, partial hop, coverage and volume target."""
        audio = audio_config_from_dict(config.get("audio", {}))
        if audio.sample_rate != 16000:
            raise BackboneError(
                f"the GE2E encoder needs 16 kHz audio; the saved config says {audio.sample_rate}"
            )
        self.audio = audio
        self.partial_hop_frames = int(config.get("partial_hop_frames", self.partial_hop_frames))
        self.min_coverage = float(config.get("min_coverage", self.min_coverage))
        self.target_dbfs = config.get("volume_normalization", {}).get("target_dbfs", self.target_dbfs)
        _check_reproduced(self, config)

    # -- forward ------------------------------------------------------------------------------
    def partials(self, batch: AudioBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Mel partials of every clip [P, partial_frames, 40] and the clip each belongs to [P]."""
        waveform, lengths = _unpack(batch)
        waveform = waveform.float()
        hop = self.frontend.hop_length
        if self.target_dbfs is not None:
            waveform = waveform * self._volume_gain(waveform, lengths)[:, None]
        starts_per_clip = []
        needed = 0
        for n in lengths.tolist():
            # resemblyzer counts ceil((n + 1) / hop) frames and pads the clip to the last partial's end
            starts = window_starts(
                math.ceil((n + 1) / hop),
                self.partial_frames,
                self.partial_hop_frames,
                self.min_coverage,
                covered=n / hop,
            )
            starts_per_clip.append(starts)
            needed = max(needed, (starts[-1] + self.partial_frames) * hop)
        if needed > waveform.shape[1]:
            waveform = F.pad(waveform, (0, needed - waveform.shape[1]))
        # zero padding is what resemblyzer pads with too, so a clip's frames do not depend on the batch
        mel = self.frontend(waveform).transpose(1, 2)  # [B, T, 40]
        index = torch.tensor([s for starts in starts_per_clip for s in starts], device=mel.device)
        owner = torch.tensor(
            [i for i, starts in enumerate(starts_per_clip) for _ in starts], device=mel.device
        )
        frames = index[:, None] + torch.arange(self.partial_frames, device=mel.device)[None, :]
        return mel[owner[:, None], frames], owner

    def _volume_gain(self, waveform: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Gain raising each clip's RMS to `target_dbfs` (never lowering it), as resemblyzer does."""
        lengths = lengths.to(waveform.device)
        target = -30.0 if self.target_dbfs is None else float(self.target_dbfs)
        rms = torch.sqrt(waveform.square().sum(dim=1) / lengths.clamp_min(1).to(waveform.dtype))
        dbfs = 20 * torch.log10(rms.clamp_min(1e-10))
        change = (target - dbfs).clamp_min(0.0)
        return torch.pow(10.0, change / 20)

    def embed_partials(self, mels: torch.Tensor) -> torch.Tensor:
        """Partials [P, frames, 40] → L2-normalised partial embeddings [P, 256]."""
        x = mels
        for i, layer in enumerate(self.lstm):
            if i < len(self.lstm) - 1:
                x, _ = layer(x)
            else:
                _, (hidden, _) = layer(x)
        embeds = F.relu(self.linear(hidden[-1]))
        return F.normalize(embeds, dim=1, eps=1e-12)

    def forward_features(self, batch: AudioBatch) -> torch.Tensor:
        """Utterance embeddings [B, 256]: the L2-normalised mean of each clip's partial embeddings."""
        waveform, _ = _unpack(batch)
        mels, owner = self.partials(batch)
        partial_embeds = self.embed_partials(mels)
        return F.normalize(segment_mean(partial_embeds, owner, waveform.shape[0]), dim=1, eps=1e-12)

    def graph_parts(self) -> GraphParts[AudioBatch, _Owners]:
        """The LSTM over partials is the graph; the mel partials and their averaging stay in torch."""
        return GraphParts(
            module=_PartialEmbedder(self).eval(),
            example=self.example_batch(),
            input_names=("partials",),
            dynamic_axes={"partials": {0: "partials"}},
            prepare=self._graph_inputs,
            finish=self._graph_finish,
        )

    def _graph_inputs(self, batch: AudioBatch) -> tuple[dict[str, torch.Tensor], _Owners]:
        mels, owner = self.partials(batch)
        return {"partials": mels}, (owner, int(_unpack(batch)[0].shape[0]))

    @staticmethod
    def _graph_finish(rows: torch.Tensor, context: _Owners) -> torch.Tensor:
        owner, count = context
        return F.normalize(segment_mean(rows, owner.to(rows.device), count), dim=1, eps=1e-12)

    def layer_groups(self) -> list[nn.Module]:
        return [*self.lstm, self.linear]


def _ge2e_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """resemblyzer's keys (`lstm.weight_ih_l1`) → ours (`lstm.1.weight_ih_l0`); checks every shape.

    A state dict saved from `GE2ESpeakerEncoder` itself passes through unchanged. The GE2E loss's
    own parameters (`similarity_weight`, `similarity_bias`) are dropped: they are not part of the
    encoder.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("similarity_"):
            continue
        parts = key.split(".")
        if len(parts) == 2 and parts[0] == "lstm" and parts[1][-3:-1] == "_l":
            name, layer = parts[1][:-3], parts[1][-1]
            out[f"lstm.{layer}.{name}_l0"] = value
        else:
            out[key] = value
    expected = GE2ESpeakerEncoder().state_dict()
    missing = sorted(set(expected) - set(out))
    unexpected = sorted(set(out) - set(expected))
    wrong = sorted(k for k in set(expected) & set(out) if expected[k].shape != out[k].shape)
    if missing or unexpected or wrong:
        raise BackboneError(
            "weights do not fit the GE2E encoder (3-layer LSTM 40→256, linear 256→256): "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong[:5]}"
        )
    return out


def ge2e_weight_file() -> Path | None:
    """resemblyzer's `pretrained.pt`, found without importing resemblyzer (which fails here)."""
    return package_file(*GE2E_WEIGHTS)


def create_ge2e(weights: str | None = None, *, seed: int = 0, **kwargs: Any) -> GE2ESpeakerEncoder:
    """The GE2E speaker encoder with the zoo weights, a local weight file, or random weights.

    `weights`: None/"pretrained" for resemblyzer's `pretrained.pt`, "random" for a seeded random
    initialisation (a control), or a path to a .pt/.safetensors state dict. Other keyword arguments
    go to `GE2ESpeakerEncoder` (audio, partial_hop_frames, min_coverage, target_dbfs).
    """
    if weights in (None, PRETRAINED):
        path = ge2e_weight_file()
        if path is None:
            raise BackboneError(
                "the GE2E speaker encoder's weights come from the 'resemblyzer' wheel, which is not "
                "installed. Install it with: pip install --no-deps resemblyzer  (or transferkit[zoo])"
            )
    elif weights == RANDOM:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return GE2ESpeakerEncoder(weights_id=random_weights_id(seed, "ge2e"), **kwargs)
    elif weights == HUB:
        raise BackboneError(
            "the GE2E speaker encoder has no hub source; its weights come from the 'resemblyzer' "
            "wheel (pip install --no-deps resemblyzer) or a local file (weights='path/to/file.pt')"
        )
    else:
        path = Path(weights)
    return GE2ESpeakerEncoder(load_state_dict(path), weights_id=sha256_file(path), **kwargs)


register_backbone(
    BackboneEntry(
        name=GE2E_NAME,
        modality="audio",
        factory=create_ge2e,
        num_features=256,
        num_params=1_423_616,
        input_size="16 kHz mono, 40 mel bands, 1.6 s partials",
        source="resemblyzer",
        available=lambda: ge2e_weight_file() is not None,
        description="GE2E speaker encoder (LSTM, VoxCeleb/LibriSpeech speakers): who is speaking, "
        "voice timbre, recording channel",
        aliases=("ge2e",),
    )
)

# ---------------------------------------------------------------------------------------------
# Image backbones over log-mel spectrograms
# ---------------------------------------------------------------------------------------------


def _jsonable(config: JSONObject) -> JSONObject:
    """`config` as it reads back from JSON (tuples become lists), so saved and live configs compare equal."""
    return json.loads(json.dumps(config))


def _image_geometry(backbone: Backbone) -> tuple[tuple[int, int], list[float], list[float]]:
    """Input size (H, W), mean and std an image backbone expects, from its `preprocess_config()`.

    Looks for timm-style keys: `input_size` ([3, H, W], [H, W] or an int) or `image_size`/`size`/
    `crop_size`, and `mean`/`std`.
    """
    cfg = backbone.preprocess_config()
    size: object = None
    for key in ("input_size", "image_size", "crop_size", "size"):
        if cfg.get(key) is not None:
            size = cfg[key]
            break
    if isinstance(size, int | float):
        hw = (int(size), int(size))
    elif isinstance(size, list | tuple) and len(size) in (2, 3):
        hw = (int(size[-2]), int(size[-1]))
    else:
        raise ConfigError(
            f"cannot tell the input size of image backbone '{backbone.name}' from its preprocess "
            f"config (keys: {sorted(cfg)}); pass image_size=(H, W) to SpectrogramImageBackbone"
        )
    mean, std = cfg.get("mean"), cfg.get("std")
    if mean is None or std is None:
        raise ConfigError(
            f"image backbone '{backbone.name}' does not state its normalisation mean/std; "
            "pass mean=[…] and std=[…] to SpectrogramImageBackbone"
        )
    return hw, [float(m) for m in mean], [float(s) for s in std]


class SpectrogramImageBackbone(WaveformBackbone):
    """An image backbone applied to log-mel spectrograms drawn as images.

    Rendering: power mel spectrogram → dB (10·log10, floored `top_db` below the clip's loudest
    cell) → scaled to [0, 1] (the loudest cell is 1) → low frequencies at the bottom, time left to
    right → resized bilinearly to the backbone's input size → repeated on 3 channels → normalised
    with the backbone's mean/std, as an RGB photo in [0, 1] would be.

    `window_s=None` draws each whole clip as one image (clips of different lengths are stretched
    differently; fix `duration_s` in `audio` to avoid that). With `window_s`, the clip is cut into
    windows of that length (overlapping by `window_overlap`), each drawn at the same time scale,
    and their embeddings are averaged: long clips then cost proportionally more.
    """

    modality = "audio"
    _mean: torch.Tensor
    _std: torch.Tensor

    def __init__(
        self,
        image_backbone: Backbone,
        *,
        audio: AudioLoadConfig | None = None,
        n_mels: int = 128,
        n_fft: int = 512,
        win_length: int = 400,
        hop_length: int = 160,
        fmin: float = 0.0,
        fmax: float | None = None,
        top_db: float = 80.0,
        window_s: float | None = None,
        window_overlap: float = 0.5,
        image_size: tuple[int, int] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if getattr(image_backbone, "modality", None) != "image":
            raise ConfigError(
                f"SpectrogramImageBackbone needs an image backbone, got '{image_backbone.name}' of "
                f"modality {getattr(image_backbone, 'modality', None)!r}"
            )
        if window_s is not None and window_s <= 0:
            raise ConfigError(f"window_s must be positive or None, got {window_s}")
        if not 0 <= window_overlap < 1:
            raise ConfigError(f"window_overlap must be in [0, 1), got {window_overlap}")
        if top_db <= 0:
            raise ConfigError(f"top_db must be positive, got {top_db}")
        self.image_backbone = image_backbone
        self.audio = audio or AudioLoadConfig(sample_rate=16000)
        self.frontend = MelSpectrogram(
            self.audio.sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            win_length=win_length,
            fmin=fmin,
            fmax=fmax,
        )
        self.top_db = float(top_db)
        self.window_s = window_s
        self.window_overlap = window_overlap
        if image_size is None or mean is None or std is None:
            found_size, found_mean, found_std = _image_geometry(image_backbone)
            image_size = image_size or found_size
            mean = mean if mean is not None else found_mean
            std = std if std is not None else found_std
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.register_buffer("_mean", torch.tensor(self.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.std).view(1, -1, 1, 1), persistent=False)
        self.name = str(BackboneSpec("model", image_backbone.name, logmel=True))
        self.num_features = image_backbone.num_features
        self.weights_id = image_backbone.weights_id
        # an ImageNet head on spectrograms is still a valid source model for LEEP / NCE
        self.source_head = image_backbone.source_head
        self.source_labels = image_backbone.source_labels

    # -- preprocessing ------------------------------------------------------------------------
    def preprocess_config(self) -> JSONObject:
        return {
            "kind": "audio",
            "audio": self.audio.to_dict(),
            "frontend": {**self.frontend.config(), "type": "log_mel_image"},
            "db": {"top_db": self.top_db, "reference": "clip max", "scale": "0..1"},
            "window_s": self.window_s,
            "window_overlap": self.window_overlap,
            "image_size": list(self.image_size),
            "channels": 3,
            "frequency_axis": "low at bottom",
            "interpolation": "bilinear",
            "mean": self.mean,
            "std": self.std,
            "image_backbone": self.image_backbone.name,
            "image_preprocess": _jsonable(self.image_backbone.preprocess_config()),
        }

    def apply_preprocess_config(self, config: JSONObject) -> None:
        """Adopt a bundle's saved clip length, spectrogram, windowing and image geometry."""
        saved_image = config.get("image_preprocess")
        if saved_image is not None and saved_image != _jsonable(self.image_backbone.preprocess_config()):
            self.image_backbone.apply_preprocess_config(saved_image)
        self.audio = audio_config_from_dict(config.get("audio", {}))
        frontend = {**config.get("frontend", {}), "type": "mel_power"}
        self.frontend = MelSpectrogram.from_config(frontend).to(self._mean.device)
        self.top_db = float(config.get("db", {}).get("top_db", self.top_db))
        self.window_s = config.get("window_s")
        self.window_overlap = float(config.get("window_overlap", self.window_overlap))
        size = config.get("image_size", list(self.image_size))
        self.image_size = (int(size[0]), int(size[1]))
        self.mean = [float(m) for m in config.get("mean", self.mean)]
        self.std = [float(s) for s in config.get("std", self.std)]
        self._mean = torch.tensor(self.mean, device=self._mean.device).view(1, -1, 1, 1)
        self._std = torch.tensor(self.std, device=self._std.device).view(1, -1, 1, 1)
        _check_reproduced(self, config)

    # -- forward ------------------------------------------------------------------------------
    def images(self, batch: AudioBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Spectrogram images [P, 3, H, W] (one per clip, or per window) and their clip [P]."""
        waveform, lengths = _unpack(batch)
        mel = self.frontend(waveform.float())  # [B, n_mels, T]
        images, owners = [], []
        if self.window_s is None:
            win = None
        else:
            win = max(1, round(self.window_s * self.audio.sample_rate / self.frontend.hop_length))
            hop = max(1, round(win * (1 - self.window_overlap)))
        for i, n in enumerate(lengths.tolist()):
            frames = self.frontend.num_frames(int(n))
            db = 10 * torch.log10(mel[i, :, :frames].clamp_min(1e-10))
            db = torch.maximum(db, db.max() - self.top_db)
            picture = ((db - (db.max() - self.top_db)) / self.top_db).flip(0)  # [n_mels, frames]
            if win is None:
                pieces = [picture]
            else:
                if frames < win:
                    picture = F.pad(picture, (0, win - frames))
                pieces = [picture[:, s : s + win] for s in window_starts(frames, win, hop, 0.5)]
                pieces = [F.pad(p, (0, win - p.shape[1])) for p in pieces]
            for p in pieces:
                images.append(
                    F.interpolate(p[None, None], size=self.image_size, mode="bilinear", align_corners=False)[
                        0
                    ]
                )
                owners.append(i)
        x = torch.stack(images).expand(-1, 3, -1, -1)
        # channels-last: ~1.5x faster convolutions on CPU even when the weights are NCHW (measured
        # on EfficientNet-Lite0), and the extraction loop only converts inputs of image backbones
        x = ((x - self._mean) / self._std).contiguous(memory_format=torch.channels_last)
        return x, torch.tensor(owners, device=x.device)

    def forward_features(self, batch: AudioBatch) -> torch.Tensor:
        """Clip embeddings [B, num_features] (the mean over windows when `window_s` is set)."""
        waveform, _ = _unpack(batch)
        x, owner = self.images(batch)
        feats = self.image_backbone.forward_features(x)
        if x.shape[0] == waveform.shape[0]:
            return feats
        return segment_mean(feats, owner, waveform.shape[0])

    def graph_parts(self) -> GraphParts[AudioBatch, _Owners]:
        """The image backbone is the graph; the spectrogram images and window averaging stay in torch."""
        return GraphParts(
            module=ForwardFeatures(self.image_backbone).eval(),
            example=self.example_batch(),
            prepare=self._graph_inputs,
            finish=self._graph_finish,
        )

    def _graph_inputs(self, batch: AudioBatch) -> tuple[dict[str, torch.Tensor], _Owners]:
        x, owner = self.images(batch)
        return {"input": x}, (owner, int(_unpack(batch)[0].shape[0]))

    @staticmethod
    def _graph_finish(rows: torch.Tensor, context: _Owners) -> torch.Tensor:
        owner, count = context
        return rows if rows.shape[0] == count else segment_mean(rows, owner.to(rows.device), count)

    def forward_feature_map(self, batch: AudioBatch) -> torch.Tensor:
        """The image backbone's unpooled map of each clip's image (whole-clip images only)."""
        if self.window_s is not None:
            raise BackboneError(f"'{self.name}' has no single feature map per clip when window_s is set")
        x, _ = self.images(batch)
        return self.image_backbone.forward_feature_map(x)

    def layer_groups(self) -> list[nn.Module]:
        return self.image_backbone.layer_groups()


def create_logmel_backbone(
    image: str | BackboneSpec,
    weights: str | None = None,
    *,
    image_kwargs: dict[str, object] | None = None,
    **kwargs: Any,
) -> SpectrogramImageBackbone:
    """`create_backbone(image, weights)` wrapped in a `SpectrogramImageBackbone(**kwargs)`."""
    from transferkit.backbones.registry import create_backbone

    backbone = create_backbone(image, weights=weights, **(image_kwargs or {}))
    if backbone.modality != "image":
        raise BackboneError(f"'{BackboneSpec('model', backbone.name, logmel=True)}': '{backbone.name}' is a "
                            f"{backbone.modality} backbone, not an image one")
    return SpectrogramImageBackbone(backbone, **kwargs)


def resolve_audio_name(spec: BackboneSpec) -> Callable[..., Backbone] | None:
    """Registry hook: a factory for `efficientnet_lite0+logmel` (a model with `logmel`), else None.

    The factory takes `weights=` (passed on to the image backbone) and the keyword arguments of
    `SpectrogramImageBackbone`.
    """
    if spec.kind != "model" or not spec.logmel:
        return None
    return functools.partial(create_logmel_backbone, spec.inner().without_weights())


register_resolver(resolve_audio_name)
