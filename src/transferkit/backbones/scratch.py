"""From-scratch baselines behind the backbone contract: features that learned nothing elsewhere.

Transfer has to beat what a user would get without it. Each modality gets the classic hand-made
representation a linear head is trained on from scratch, computed from the input alone (nothing
pretrained, nothing fitted to other data), so that it can stand in every comparison — ranking,
`--backbone auto`, the data-efficiency curve — exactly like a pretrained backbone:

- `hog` (images): histograms of oriented gradients (Dalal & Triggs, CVPR 2005) on a 64×64
  grayscale copy — 8×8-pixel cells, 9 unsigned orientation bins, 2×2-cell blocks L2-Hys
  normalised — plus an 8×8 colour thumbnail: 1764 + 192 features;
- `mfcc` (audio): 20 MFCCs (16 kHz, 25 ms / 10 ms, 40 mel bands, log, DCT-II) and their deltas,
  summarised over time by mean and standard deviation: 80 features;
- `tfidf` (text): word 1–2-grams and character 2–4-grams (within word boundaries), hashed into
  2^13 buckets each (sklearn's `HashingVectorizer`, so nothing is fitted and the features of a
  text never depend on other texts), sublinear term frequency, each half L2-normalised: 16384
  features. The head's standardisation then plays the role of the IDF weighting.

The features are computed in `load` (so in DataLoader workers) and `forward_features` only stacks
them; they are cached like any backbone's. None of these can be fine-tuned (no layers).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from transferkit.backbones.contract import Backbone, Modality
from transferkit.backbones.registry import BackboneEntry, register_backbone
from transferkit.errors import BackboneError, InputError
from transferkit.jsontypes import JSONObject

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import HashingVectorizer

HOG_SIZE = 64
HOG_CELL = 8
HOG_BINS = 9
THUMB = 8
MFCC_COEFFS = 20
TEXT_BUCKETS = 2**13


class HogFeatures:
    """Path or PIL image → HOG of a 64×64 grayscale copy ⊕ an 8×8 RGB thumbnail (picklable)."""

    def __call__(self, item: object) -> torch.Tensor:
        from PIL import Image

        from transferkit.data.images import image_source, open_image

        img = open_image(image_source(item), min_size=HOG_SIZE)
        gray = np.asarray(img.convert("L").resize((HOG_SIZE, HOG_SIZE), Image.Resampling.BILINEAR), np.float32)
        thumb = np.asarray(img.resize((THUMB, THUMB), Image.Resampling.BOX), np.float32).reshape(-1) / 255.0
        return torch.from_numpy(np.concatenate([hog(gray / 255.0), thumb]).astype(np.float32))


def hog(gray: np.ndarray) -> np.ndarray:
    """Dalal–Triggs HOG of a [H, W] image in [0, 1]: cells of 8 px, 9 unsigned bins, 2×2 blocks, L2-Hys."""
    gy, gx = np.gradient(gray.astype(np.float64))
    magnitude = np.hypot(gx, gy)
    angle = np.rad2deg(np.arctan2(gy, gx)) % 180.0
    position = angle / (180.0 / HOG_BINS) - 0.5  # linear interpolation between the two nearest bins
    lower = np.floor(position).astype(int)
    upper_weight = position - lower
    h, w = gray.shape
    cells_y, cells_x = h // HOG_CELL, w // HOG_CELL
    hist = np.zeros((cells_y, cells_x, HOG_BINS))
    cell_y = (np.arange(h) // HOG_CELL).clip(max=cells_y - 1)
    cell_x = (np.arange(w) // HOG_CELL).clip(max=cells_x - 1)
    cy, cx = np.meshgrid(cell_y, cell_x, indexing="ij")
    for bins, weight in ((lower % HOG_BINS, 1.0 - upper_weight), ((lower + 1) % HOG_BINS, upper_weight)):
        np.add.at(hist, (cy, cx, bins), magnitude * weight)
    blocks = []
    for y in range(cells_y - 1):
        for x in range(cells_x - 1):
            block = hist[y : y + 2, x : x + 2].reshape(-1)
            block = block / np.sqrt(np.sum(block**2) + 1e-6)
            block = np.minimum(block, 0.2)  # L2-Hys: clip, then renormalise
            blocks.append(block / np.sqrt(np.sum(block**2) + 1e-6))
    return np.concatenate(blocks)


class MfccStats:
    """Clip → mean and std over time of 20 MFCCs and their deltas (picklable)."""

    def __init__(self) -> None:
        from transferkit.data.audio_clips import AudioLoadConfig

        self.config = AudioLoadConfig(sample_rate=16000)
        self._filters: np.ndarray | None = None

    def _mel_filters(self) -> np.ndarray:
        if self._filters is None:
            from transferkit.backbones.audio import mel_filterbank

            self._filters = mel_filterbank(16000, 512, 40).numpy().astype(np.float64)
        return self._filters

    def __call__(self, item: object) -> torch.Tensor:
        from scipy.fft import dct

        from transferkit.data.audio_clips import load_audio_input

        wave = load_audio_input(item, self.config).numpy().astype(np.float64)
        win, hop, n_fft = 400, 160, 512
        if len(wave) < win:
            wave = np.pad(wave, (0, win - len(wave)))
        frames = np.lib.stride_tricks.sliding_window_view(wave, win)[::hop] * np.hanning(win + 1)[:-1]
        power = np.abs(np.fft.rfft(frames, n=n_fft, axis=1)) ** 2
        log_mel = np.log(power @ self._mel_filters().T + 1e-10)
        mfcc = dct(log_mel, type=2, axis=1, norm="ortho")[:, :MFCC_COEFFS]
        delta = np.gradient(mfcc, axis=0) if len(mfcc) > 1 else np.zeros_like(mfcc)
        both = np.concatenate([mfcc, delta], axis=1)
        return torch.from_numpy(np.concatenate([both.mean(axis=0), both.std(axis=0)]).astype(np.float32))


class HashedNgrams:
    """Text → hashed word 1–2-gram and char 2–4-gram counts, sublinear tf, each half L2-normalised."""

    def __init__(self) -> None:
        self._vectorizers: tuple[HashingVectorizer, HashingVectorizer] | None = None

    def _build(self) -> tuple[HashingVectorizer, HashingVectorizer]:
        if self._vectorizers is None:
            from sklearn.feature_extraction.text import HashingVectorizer

            common = {"n_features": TEXT_BUCKETS, "alternate_sign": False, "norm": None, "lowercase": True}
            self._vectorizers = (HashingVectorizer(analyzer="word", ngram_range=(1, 2), **common),
                                 HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), **common))
        return self._vectorizers

    def __call__(self, item: object) -> torch.Tensor:
        if not isinstance(item, str):
            raise InputError(f"expected a text, got {type(item).__name__}")
        parts = []
        for vectorizer in self._build():
            counts = vectorizer.transform([item]).toarray()[0]
            tf = np.log1p(counts)
            parts.append(tf / (np.linalg.norm(tf) + 1e-12))
        return torch.from_numpy(np.concatenate(parts).astype(np.float32))

    def __getstate__(self) -> dict[str, None]:
        return {"_vectorizers": None}  # workers rebuild the (stateless) vectorizers


class ScratchBackbone(Backbone[torch.Tensor, torch.Tensor]):
    """A hand-made featurizer behind the backbone contract (nothing pretrained, nothing to train)."""

    native_engine = "numpy"  # the features are made in `load`: no network for an engine to run

    def __init__(self, name: str, modality: Modality, num_features: int, featurize: Callable[[object], torch.Tensor],
                 config: JSONObject) -> None:
        super().__init__()
        self.name, self.modality, self.num_features = name, modality, num_features
        self._featurize, self._config = featurize, config
        #: no weights: the sha256 of the featurizer's configuration stands in for them in cache keys
        self.weights_id = hashlib.sha256(("scratch:" + json.dumps(config, sort_keys=True)).encode()).hexdigest()

    def preprocess_config(self) -> JSONObject:
        return dict(self._config)

    def load(self, item: object) -> torch.Tensor:
        return self._featurize(item)

    def collate(self, samples: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(samples))

    def forward_features(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.float()

    def layer_groups(self) -> list[nn.Module]:
        raise BackboneError(f"'{self.name}' is a from-scratch featurizer with no layers to fine-tune; use it with "
                            "the default --strategy probe")


def create_hog(weights: str | None = None, **_: object) -> ScratchBackbone:
    _no_weights("hog", weights)
    config = {"kind": "hog", "size": HOG_SIZE, "cell": HOG_CELL, "bins": HOG_BINS, "block": 2, "norm": "L2-Hys",
              "thumbnail": THUMB}
    blocks = (HOG_SIZE // HOG_CELL - 1) ** 2
    return ScratchBackbone("hog", "image", blocks * 4 * HOG_BINS + THUMB * THUMB * 3, HogFeatures(), config)


def create_mfcc(weights: str | None = None, **_: object) -> ScratchBackbone:
    _no_weights("mfcc", weights)
    config = {"kind": "mfcc", "sample_rate": 16000, "n_fft": 512, "win": 400, "hop": 160, "n_mels": 40,
              "coefficients": MFCC_COEFFS, "deltas": True, "stats": ["mean", "std"]}
    return ScratchBackbone("mfcc", "audio", MFCC_COEFFS * 4, MfccStats(), config)


def create_tfidf(weights: str | None = None, **_: object) -> ScratchBackbone:
    _no_weights("tfidf", weights)
    config = {"kind": "hashed-tfidf", "word_ngrams": [1, 2], "char_wb_ngrams": [2, 4], "buckets": TEXT_BUCKETS,
              "tf": "log1p", "norm": "l2 per half", "lowercase": True}
    return ScratchBackbone("tfidf", "text", 2 * TEXT_BUCKETS, HashedNgrams(), config)


def _no_weights(name: str, weights: str | None) -> None:
    if weights not in (None, "pretrained"):
        raise BackboneError(f"'{name}' is computed from the input alone and takes no weights (not even random ones: "
                            f"nothing in it is learned); got weights={weights!r}")


#: the from-scratch baseline of each modality
SCRATCH_BACKBONES = {"image": "hog", "audio": "mfcc", "text": "tfidf"}

for _name, _modality, _factory, _dims, _input, _about in (
    ("hog", "image", create_hog, (HOG_SIZE // HOG_CELL - 1) ** 2 * 4 * HOG_BINS + THUMB * THUMB * 3, "64x64",
     "from scratch: histograms of oriented gradients + an 8x8 colour thumbnail"),
    ("mfcc", "audio", create_mfcc, MFCC_COEFFS * 4, "16 kHz", "from scratch: MFCC and delta statistics"),
    ("tfidf", "text", create_tfidf, 2 * TEXT_BUCKETS, "any length", "from scratch: hashed word and character n-grams"),
):
    register_backbone(BackboneEntry(name=_name, modality=_modality, factory=_factory, num_features=_dims,  # type: ignore[arg-type]
                                    num_params=0, input_size=_input, source="none (computed from the input)",
                                    available=lambda: True, description=_about, finetunable=False))
