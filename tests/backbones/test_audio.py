"""Audio backbones: the mel frontend, the GE2E speaker encoder, image backbones over log-mels."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from transferkit.backbones import audio
from transferkit.backbones.audio import (
    GE2ESpeakerEncoder,
    MelSpectrogram,
    SpectrogramImageBackbone,
    create_ge2e,
    create_logmel_backbone,
    ge2e_weight_file,
    mel_filterbank,
    resolve_audio_name,
)
from transferkit.backbones.contract import Backbone
from transferkit.backbones.registry import get_entry, list_backbones
from transferkit.backbones.spec import parse_backbone
from transferkit.backbones.weights import load_state_dict, sha256_file
from transferkit.errors import BackboneError, ConfigError, InputError

SR = 16000
needs_ge2e = pytest.mark.skipif(
    ge2e_weight_file() is None, reason="resemblyzer wheel (GE2E weights) not installed"
)


def tone(freq: float, seconds: float = 1.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(SR * seconds)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def synthetic_voice(
    rng: np.random.Generator, f0: float, formants: list[tuple[float, float]], seconds: float = 2.0
):
    """A buzzy vowel-like sound: a harmonic stack at pitch f0 with vibrato and jitter, shaped by
    a formant envelope (the 'timbre'), with a slow syllable-like loudness envelope and a little noise."""
    t = np.arange(int(SR * seconds)) / SR
    f = f0 * (
        1
        + 0.03 * np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 6))
        + 0.02 * rng.standard_normal()
    )
    phase = 2 * np.pi * np.cumsum(f) / SR
    x = np.zeros_like(t)
    for k in range(1, int(7000 / f0)):
        gain = sum(np.exp(-(((k * f0 - centre) / width) ** 2)) for centre, width in formants) + 0.02
        x += gain / np.sqrt(k) * np.sin(k * phase + rng.uniform(0, 6))
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(2, 5) * t + rng.uniform(0, 6))
    x += 0.01 * rng.standard_normal(len(t))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


VOICE_A = {"f0": 110.0, "formants": [(700, 150), (1200, 200), (2600, 300)]}
VOICE_B = {"f0": 210.0, "formants": [(400, 100), (2200, 250), (3000, 300)]}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Any:
    """Run these tests on one intra-op thread. The LSTM makes hundreds of small calls, and with two
    OpenMP threads on a busy 2-core machine each call waits for a descheduled thread: measured
    here, 10-20x slower than one thread (1 s → 20 s for the voice test)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def check_contract(backbone: Backbone, items: list[Any]) -> torch.Tensor:
    """What every backbone promises: [B, num_features], finite, deterministic, JSON config,
    layer groups covering every trainable parameter once."""
    backbone.eval()
    batch = backbone.preprocess(items)
    with torch.no_grad():
        first = backbone.forward_features(batch)
        second = backbone.forward_features(backbone.preprocess(items))
    assert first.shape == (len(items), backbone.num_features)
    assert torch.isfinite(first).all()
    torch.testing.assert_close(first, second)
    config = backbone.preprocess_config()
    assert json.loads(json.dumps(config)) == config
    # DataLoader workers get the loader, not the weights
    assert len(pickle.dumps(backbone.sample_loader())) < 10_000
    grouped = [id(p) for group in backbone.layer_groups() for p in group.parameters()]
    assert len(grouped) == len(set(grouped)), "a parameter is in two layer groups"
    head = {id(p) for p in backbone.source_head.parameters()} if backbone.source_head is not None else set()
    assert set(grouped) == {id(p) for p in backbone.parameters()} - head
    assert backbone.modality == "audio"
    return first


# -- frontend -------------------------------------------------------------------------------------


def test_mel_filterbank_matches_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    for sr, n_fft, n_mels in [(16000, 400, 40), (16000, 512, 128), (22050, 2048, 64)]:
        expected = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
        np.testing.assert_allclose(mel_filterbank(sr, n_fft, n_mels).numpy(), expected, rtol=1e-5, atol=1e-8)


def test_mel_spectrogram_matches_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    y = (0.1 * np.random.default_rng(0).standard_normal(SR * 2 + 123)).astype(np.float32)
    expected = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=400, hop_length=160, n_mels=40)
    ours = MelSpectrogram(SR, n_fft=400, hop_length=160, n_mels=40)(torch.from_numpy(y)[None])[0].numpy()
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-6 * expected.max())


def test_mel_spectrogram_puts_a_tone_in_its_band() -> None:
    frontend = MelSpectrogram(SR, n_fft=400, hop_length=160, n_mels=40)
    mel = frontend(torch.from_numpy(tone(1000.0))[None])[0]
    assert mel.shape == (40, frontend.num_frames(SR))
    filters = mel_filterbank(SR, 400, 40)
    bin_1k = round(1000 * 400 / SR)
    assert int(mel.mean(dim=1).argmax()) == int(filters[:, bin_1k].argmax())
    assert not any(p.requires_grad for p in frontend.parameters())
    assert frontend.state_dict() == {}


# -- GE2E -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ge2e() -> GE2ESpeakerEncoder:
    if ge2e_weight_file() is None:
        pytest.skip("resemblyzer wheel (GE2E weights) not installed")
    return create_ge2e().eval()


def test_ge2e_registered() -> None:
    entry = get_entry("ge2e")
    assert entry is not None and entry is get_entry("ge2e-speaker-encoder")
    assert entry.modality == "audio" and entry.num_features == 256
    assert entry.num_params == sum(p.numel() for p in GE2ESpeakerEncoder().parameters())
    assert entry.available() == (ge2e_weight_file() is not None)
    assert entry in list_backbones("audio")


@needs_ge2e
def test_ge2e_contract(ge2e: GE2ESpeakerEncoder, tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(str(path), tone(220.0, 1.0), 44100)  # read through soundfile and resampled
    items: list[Any] = [str(path), tone(330.0, 2.5), (tone(440.0, 0.7), 8000)]
    emb = check_contract(ge2e, items)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    assert ge2e.weights_id == sha256_file(ge2e_weight_file())
    assert len(ge2e.layer_groups()) == 4  # three LSTM layers, then the projection


@needs_ge2e
def test_ge2e_padding_in_a_batch_does_not_change_an_embedding(ge2e: GE2ESpeakerEncoder) -> None:
    short, long = tone(200.0, 0.8), tone(300.0, 3.0)
    with torch.no_grad():
        alone = ge2e.forward_features(ge2e.preprocess([short]))
        together = ge2e.forward_features(ge2e.preprocess([short, long]))
    torch.testing.assert_close(alone[0], together[0], atol=1e-5, rtol=1e-5)


@needs_ge2e
def test_ge2e_equals_the_stacked_lstm_of_the_original_weights(ge2e: GE2ESpeakerEncoder) -> None:
    """Our three chained 1-layer LSTMs compute what resemblyzer's 3-layer nn.LSTM computes."""
    state = load_state_dict(ge2e_weight_file())
    lstm, linear = nn.LSTM(40, 256, 3, batch_first=True), nn.Linear(256, 256)
    lstm.load_state_dict({k.removeprefix("lstm."): v for k, v in state.items() if k.startswith("lstm.")})
    linear.load_state_dict(
        {k.removeprefix("linear."): v for k, v in state.items() if k.startswith("linear.")}
    )
    mels, _ = ge2e.partials(ge2e.preprocess([tone(150.0, 2.0)]))
    assert mels.shape[1:] == (160, 40)
    with torch.no_grad():
        _, (hidden, _) = lstm(mels)
        expected = torch.nn.functional.normalize(torch.relu(linear(hidden[-1])), dim=1)
        torch.testing.assert_close(ge2e.embed_partials(mels), expected, atol=1e-5, rtol=1e-5)


def test_ge2e_partials_follow_resemblyzer_slicing() -> None:
    encoder = GE2ESpeakerEncoder()
    for seconds, expected in [(0.5, 1), (1.6, 1), (2.0, 2), (3.3, 3)]:
        _, owner = encoder.partials(encoder.preprocess([tone(200.0, seconds)]))
        assert len(owner) == expected, seconds


def _separation(backbone: Backbone, n: int = 6, seed: int = 0) -> tuple[float, float]:
    """(mean same-voice cosine − mean different-voice cosine, that gap over the cosines' spread)."""
    rng = np.random.default_rng(seed)
    clips = [synthetic_voice(rng, **VOICE_A) for _ in range(n)] + [
        synthetic_voice(rng, **VOICE_B) for _ in range(n)
    ]
    with torch.no_grad():
        emb = backbone.forward_features(backbone.preprocess(clips))
    sims = (emb @ emb.T).numpy()
    labels = np.array([0] * n + [1] * n)
    same = (labels[:, None] == labels[None, :]) & ~np.eye(2 * n, dtype=bool)
    different = labels[:, None] != labels[None, :]
    gap = float(sims[same].mean() - sims[different].mean())
    return gap, gap / float(np.concatenate([sims[same], sims[different]]).std())


@needs_ge2e
def test_pretrained_ge2e_separates_two_synthetic_voices_better_than_random(ge2e: GE2ESpeakerEncoder) -> None:
    gap, separation = _separation(ge2e)
    random_runs = [_separation(create_ge2e("random", seed=s).eval()) for s in range(2)]
    # measured: pretrained gap ≈ 0.38, separation ≈ 2.0; random-init gaps ≈ 1e-4 (its embeddings
    # barely move), separations 0.3–0.6
    assert gap > 0.2
    assert separation > 1.5
    assert all(separation > 2 * s for _, s in random_runs)
    assert all(gap > 100 * g for g, _ in random_runs)


def test_ge2e_weights_sources(tmp_path: Path) -> None:
    random = create_ge2e("random", seed=3)
    assert random.weights_id == "random-init:3:ge2e"
    saved = tmp_path / "ge2e.pt"
    torch.save(random.state_dict(), saved)  # our own key layout loads back too
    again = create_ge2e(str(saved))
    assert again.weights_id == sha256_file(saved)
    for a, b in zip(random.parameters(), again.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    wrong = tmp_path / "wrong.pt"
    torch.save({"lstm.weight_ih_l0": torch.zeros(3, 3)}, wrong)
    with pytest.raises(BackboneError, match="do not fit the GE2E encoder"):
        create_ge2e(str(wrong))
    with pytest.raises(BackboneError, match="no hub source"):
        create_ge2e("hub")


def test_ge2e_refuses_pickled_code(tmp_path: Path) -> None:
    """A weight file that would run code when unpickled is refused, not executed."""

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (Path(tmp_path / "pwned").touch, ())

    path = tmp_path / "evil.pt"
    torch.save({"model_state": {"x": torch.zeros(1)}, "extra": Evil()}, path, pickle_module=pickle)
    with pytest.raises(BackboneError, match="cannot read weight file"):
        create_ge2e(str(path))
    assert not (tmp_path / "pwned").exists()


def test_ge2e_bad_inputs_and_config(tmp_path: Path) -> None:
    encoder = GE2ESpeakerEncoder()
    with pytest.raises(InputError, match="silent"):
        encoder.load(np.zeros(SR, dtype=np.float32))
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        encoder.load(str(empty))
    with pytest.raises(ConfigError):
        GE2ESpeakerEncoder(partial_hop_frames=0)


def test_ge2e_apply_preprocess_config_round_trip() -> None:
    trained = GE2ESpeakerEncoder(audio=audio.AudioLoadConfig(duration_s=3.0), partial_hop_frames=40)
    saved = json.loads(json.dumps(trained.preprocess_config()))
    fresh = GE2ESpeakerEncoder()
    fresh.apply_preprocess_config(saved)
    assert fresh.preprocess_config() == saved
    assert fresh.load(tone(300.0, 1.0)).shape == (3 * SR,)


# -- image backbones over log-mel spectrograms ------------------------------------------------------


class TinyImageBackbone(Backbone):
    """A random-init timm ResNet-18 (no classifier) behind the image contract, 64×64 inputs."""

    modality = "image"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        import timm

        torch.manual_seed(seed)
        self.model = timm.create_model("resnet18", pretrained=False, num_classes=0)
        self.name = "tiny-resnet18"
        self.num_features = int(self.model.num_features)
        self.weights_id = f"random-init:{seed}"

    def preprocess_config(self) -> dict[str, Any]:
        return {
            "kind": "image",
            "input_size": 64,
            "mean": (0.485, 0.456, 0.406),
            "std": (0.229, 0.224, 0.225),
        }

    def load(self, item: Any) -> torch.Tensor:
        raise NotImplementedError

    def forward_features(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch)

    def forward_feature_map(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(batch)

    def layer_groups(self) -> list[nn.Module]:
        m = self.model
        return [nn.ModuleList([m.conv1, m.bn1]), m.layer1, m.layer2, m.layer3, m.layer4]


@pytest.fixture(scope="module")
def logmel() -> SpectrogramImageBackbone:
    return SpectrogramImageBackbone(TinyImageBackbone(), n_mels=64).eval()


def test_logmel_contract(logmel: SpectrogramImageBackbone) -> None:
    assert logmel.name == "tiny-resnet18+logmel"
    assert logmel.image_size == (64, 64) and logmel.mean == [0.485, 0.456, 0.406]
    check_contract(logmel, [tone(300.0, 1.0), tone(900.0, 2.0), (tone(500.0, 0.5), 44100)])
    images, owner = logmel.images(logmel.preprocess([tone(300.0, 1.0)]))
    assert images.shape == (1, 3, 64, 64) and owner.tolist() == [0]
    fmap = logmel.forward_feature_map(logmel.preprocess([tone(300.0, 1.0)]))
    assert fmap.shape[:2] == (1, 512)


def test_logmel_image_puts_low_frequencies_at_the_bottom(logmel: SpectrogramImageBackbone) -> None:
    images, _ = logmel.images(logmel.preprocess([tone(200.0), tone(6000.0)]))
    raw = images[:, 0] * logmel.std[0] + logmel.mean[0]  # back to the 0..1 picture
    low_row, high_row = int(raw[0].mean(dim=1).argmax()), int(raw[1].mean(dim=1).argmax())
    assert low_row > 48 and high_row < 16
    assert 0.0 <= float(raw.min()) and float(raw.max()) <= 1.0 + 1e-5


def test_logmel_windows_are_pooled() -> None:
    windowed = SpectrogramImageBackbone(TinyImageBackbone(), n_mels=64, window_s=1.0).eval()
    batch = windowed.preprocess([tone(300.0, 3.0), tone(600.0, 0.6)])
    _, owner = windowed.images(batch)
    # 1-s windows every 0.5 s over 3 s (the last, from 2.5 s, is half real audio: kept); one for 0.6 s
    assert owner.tolist() == [0, 0, 0, 0, 0, 0, 1]
    with torch.no_grad():
        emb = windowed.forward_features(batch)
        alone = windowed.forward_features(windowed.preprocess([tone(600.0, 0.6)]))
    assert emb.shape == (2, 512)
    torch.testing.assert_close(emb[1], alone[0], atol=1e-4, rtol=1e-4)
    with pytest.raises(BackboneError):
        windowed.forward_feature_map(batch)


def test_logmel_features_tell_sound_classes_apart(logmel: SpectrogramImageBackbone) -> None:
    """Even random conv features separate low tones from high noise bursts (nearest centroid)."""
    rng = np.random.default_rng(0)

    def low() -> np.ndarray:
        return tone(rng.uniform(150, 300), 1.0, rng.uniform(0.1, 0.5))

    def hiss() -> np.ndarray:
        return (rng.uniform(0.05, 0.3) * rng.standard_normal(SR)).astype(np.float32)

    clips = [low() for _ in range(8)] + [hiss() for _ in range(8)]
    labels = np.array([0] * 8 + [1] * 8)
    with torch.no_grad():
        emb = torch.nn.functional.normalize(logmel.forward_features(logmel.preprocess(clips)), dim=1).numpy()
    train = np.r_[0:4, 8:12]
    test = np.r_[4:8, 12:16]
    centroids = np.stack([emb[train][labels[train] == c].mean(0) for c in (0, 1)])
    predicted = (emb[test] @ centroids.T).argmax(1)
    assert (predicted == labels[test]).mean() == 1.0


def test_logmel_apply_preprocess_config(logmel: SpectrogramImageBackbone) -> None:
    trained = SpectrogramImageBackbone(TinyImageBackbone(), n_mels=32, window_s=2.0, top_db=60.0)
    saved = json.loads(json.dumps(trained.preprocess_config()))
    fresh = SpectrogramImageBackbone(TinyImageBackbone())
    fresh.apply_preprocess_config(saved)
    assert fresh.preprocess_config() == saved
    assert fresh.frontend.n_mels == 32


def test_logmel_needs_an_image_backbone() -> None:
    with pytest.raises(ConfigError, match="needs an image backbone"):
        SpectrogramImageBackbone(GE2ESpeakerEncoder())  # type: ignore[arg-type]


def test_resolve_audio_name() -> None:
    """The registry hands the resolver a parsed spec: a `+logmel` model is its kind, nothing else is."""
    assert resolve_audio_name(parse_backbone("ge2e")) is None
    assert resolve_audio_name(parse_backbone("resnet18")) is None
    assert resolve_audio_name(parse_backbone("resnet18+hog")) is None
    factory = resolve_audio_name(parse_backbone("resnet18+logmel"))
    assert factory is not None
    backbone = factory(weights="random", image_size=(64, 64), n_mels=64)
    assert isinstance(backbone, SpectrogramImageBackbone)
    assert backbone.name == "resnet18+logmel" and backbone.num_features == 512
    assert backbone.weights_id == "random-init:0:resnet18"
    check_contract(backbone.eval(), [tone(300.0, 1.0), tone(700.0, 1.5)])


def test_create_logmel_over_a_registered_image_backbone() -> None:
    entry = get_entry("efficientnet_lite0")
    if entry is None or not entry.available():
        pytest.skip("efficientnet_lite0 zoo weights not installed")
    backbone = create_logmel_backbone("efficientnet_lite0", image_size=(96, 96)).eval()
    assert backbone.name == "efficientnet_lite0+logmel"
    assert backbone.source_head is not None  # the ImageNet head stays available for LEEP / NCE
    with torch.no_grad():
        out = backbone.forward_features(backbone.preprocess([tone(300.0, 1.0)]))
    assert out.shape == (1, entry.num_features) and torch.isfinite(out).all()
