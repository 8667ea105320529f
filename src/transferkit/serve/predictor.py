"""The model behind the server, split in the two halves a server needs.

- `prepare(item)`: one decoded input → one preprocessed sample (each backbone's own `load`), run
  in the request's thread, so a bad input fails its own request with a 4xx and never a batch;
- `predict(samples)`: a batch of samples → class probabilities, run by the micro-batcher on one
  model thread.

A model is one or more backbones whose features sit side by side: one for a probe or a fine-tuned
network, the parts of a concatenation, every part of every member of an ensemble. Each runs on the
engine batch extraction would choose (`engines.select_engine`): at start-up `warm_up` races the
engines installed on a few generated inputs (exporting the graph once per machine, cached), and
on the first real batch the chosen engine is checked once more against PyTorch fp32 — an engine
that disagrees on real inputs is dropped for torch fp32 and said in the log. `engine="torch"`
keeps the backbone in PyTorch (BatchNorm folded, channels_last; bf16 only where the hardware runs
it natively and it agrees with fp32). Table models encode rows with their own encoders
(`TabularTransferClassifier.features`).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from transferkit.backbones.contract import Backbone
from transferkit.errors import InputError
from transferkit.params import CACHE_DIR, ENGINE
from transferkit.serve.decode import RequestError

if TYPE_CHECKING:
    from transferkit.engines.select import BatchEngine
    from transferkit.estimators.transfer_estimator import TransferEstimator
    from transferkit.jsontypes import JSONObject

log = logging.getLogger("transferkit.serve")


def predict_precision(model: TransferEstimator) -> str:
    """The precision setting `model.features` extracts with (what `transferkit predict` uses):
    a fine-tuned network always predicts under 'auto' (`FinetunedClassifier.features`), the others
    under their `precision` parameter."""
    if getattr(model, "kind", None) == "finetuned":
        return "auto"
    return str(getattr(model, "precision", "auto"))


def warm_up_items(modality: str, backbone: Backbone, count: int) -> list[object]:
    """`count` generated inputs of `modality` in the form the server decodes requests to (seeded):
    smooth-noise RGB images, sentences of growing length, clips of noise of 1-3 s."""
    rng = np.random.default_rng(0)
    if modality == "image":
        from PIL import Image

        items: list[object] = []
        for _ in range(count):
            coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            items.append(Image.fromarray(coarse).resize((320, 320), Image.Resampling.BILINEAR))
        return items
    if modality == "text":
        words = ("model", "the", "data", "transfer", "learns", "from", "little", "a", "new", "task", "quickly")
        return [" ".join(rng.choice(words, size=4 + 6 * i)) for i in range(count)]
    rate = int(getattr(getattr(backbone, "audio", None), "sample_rate", 16_000))
    return [(0.1 * rng.standard_normal(int(rate * (1 + i % 3))).astype(np.float32), rate) for i in range(count)]


def _for_inference(backbone: Backbone, device: torch.device) -> Backbone:
    return backbone.for_inference().eval().to(device)


def _of_part(sample: object, k: int) -> object:
    """Part `k`'s sample of a prepared input (`Predictor.prepare`: one sample per part, in a tuple)."""
    if not isinstance(sample, tuple):
        raise TypeError(f"a prepared input is a tuple of each part's sample, not {type(sample).__name__}")
    return sample[k]


@dataclass
class _Part:
    """One backbone of the model: how it loads an input, and the engine its batches run on."""

    backbone: Backbone
    load: Callable[[object], object]
    engine: BatchEngine | None = None  # chosen by `Predictor.warm_up`
    verified: bool = False  # checked against PyTorch fp32 on real inputs
    notes: list[str] = field(default_factory=list)


def _engine(part: _Part) -> BatchEngine:
    """The engine `Predictor.warm_up` chose for `part`."""
    if part.engine is None:
        raise RuntimeError(f"'{part.backbone.name}' has no engine yet: call Predictor.warm_up() first")
    return part.engine


class Predictor:
    """Prepares inputs and predicts class probabilities for one loaded bundle."""

    def __init__(self, model: TransferEstimator, *, precision: str | None = None, engine: str = ENGINE.default,
                 cache_dir: str | Path | None = CACHE_DIR.default) -> None:
        from transferkit.engines import ENGINES
        from transferkit.errors import ConfigError
        from transferkit.runtime import resolve_device

        if precision not in (None, "auto", "bf16", "fp32"):
            raise ConfigError(f"--precision must be auto, bf16 or fp32; got {precision!r}")
        if engine not in ENGINES:
            raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}; got {engine!r}")
        self.model = model
        self.modality = str(model.modality_)
        self.classes = [str(c) for c in model.classes_]
        self.columns: list[str] = []
        self.path_columns: list[str] = []
        self.parts: list[_Part] = []
        self.notes: list[str] = []
        self.engine_request = engine
        self.cache_dir = cache_dir  # where exported graphs are cached (None: the default cache root)
        self.jpeg_min_size: int | None = None
        self._lock = threading.Lock()  # one forward at a time, whoever calls
        self.device = resolve_device(getattr(model, "device", None))
        if self.modality == "table":
            self.columns = [c for _, c in model.columns()]
            self.path_columns = list(model.path_columns())
            if precision is not None:
                model.precision = precision  # a runtime setting of table models (their encoders' extraction)
            self.precision = str(model.precision)
            return
        self.precision = precision or predict_precision(model)
        members = list(model.members_) if hasattr(model, "members_") else [model]
        #: what the server does differently from `transferkit predict` on the same bundle
        self.notes = [f"'{m.backbone_.name}' averages {m.tta} test-time views in `transferkit predict`; the "
                      "server predicts on each input alone (a view is drawn from its file, which uploads lack)"
                      for m in members if getattr(m, "tta", 0)]
        for member in members:
            for backbone in member.backbone_.parts():
                self.parts.append(_Part(backbone.eval().to(self.device), backbone.sample_loader()))
                pre = backbone.preprocess_config()
                if self.modality == "image" and "input_size" in pre:
                    # as `ImageTransform` does for files: a JPEG may decode at reduced scale down to this side
                    side = int(pre["input_size"] / pre.get("crop_pct", 1.0))
                    self.jpeg_min_size = max(self.jpeg_min_size or 0, side)

    def warm_up(self, batch_size: int = 8) -> list[str]:
        """Choose each backbone's engine on `batch_size` generated inputs (what the server does
        before it takes requests); returns what was chosen, one line per backbone."""
        from transferkit.engines.select import select_engine

        lines = []
        for part in self.parts:
            if part.engine is not None:
                continue
            samples = [part.load(x) for x in warm_up_items(self.modality, part.backbone, batch_size)]
            selection = select_engine(
                part.backbone, functools.partial(_for_inference, part.backbone, self.device), samples,
                engine=self.engine_request, precision=self.precision, device=self.device, channels_last=True,
                root=self.cache_dir)
            part.engine, part.notes = selection.engine, list(selection.notes)
            part.verified = (part.engine.label == "torch fp32" or part.backbone.native_engine is not None)
            lines.append(f"{part.backbone.name}: {part.engine.label}"
                         + (f" ({'; '.join(part.notes)})" if part.notes else ""))
        return lines

    def prepare(self, item: object, name: str) -> object:
        """One input → what `predict` takes; `RequestError` (422) naming the input when unusable."""
        if self.modality == "table":
            return item  # rows were checked when parsed; cells the encoders cannot use are masked
        try:
            return tuple(part.load(item) for part in self.parts)
        except InputError as exc:
            raise RequestError(422, f"{name}: {exc}") from exc

    def predict(self, samples: Sequence[object]) -> np.ndarray:
        """Class probabilities [len(samples), n_classes], columns in `classes` order."""
        with self._lock:
            if self.modality == "table":
                feats = self.model.features(list(samples), cache=False)
                return np.asarray(self.model.proba_from_features(feats.values), np.float64)
            if any(part.engine is None for part in self.parts):
                self.warm_up()
            values = np.concatenate([self._forward(part, [_of_part(s, k) for s in samples])
                                     for k, part in enumerate(self.parts)], axis=1)
            return np.asarray(self.model.proba_from_features(values), np.float64)

    def predict_rows(self, samples: Sequence[object]) -> list[np.ndarray]:
        """`predict`, one row per sample (what the micro-batcher hands back to each request)."""
        return list(self.predict(samples))

    def _forward(self, part: _Part, samples: list[object]) -> np.ndarray:
        batch = part.backbone.collate(samples)
        feats = _engine(part)(batch)
        if not part.verified:  # the race ran on generated inputs: check once on real ones
            part.verified = True
            if not self._agrees(part, samples, feats):
                feats = _engine(part)(batch)
        return feats.float().cpu().numpy()

    def _agrees(self, part: _Part, samples: list[object], feats: torch.Tensor) -> bool:
        """Whether `feats` (the chosen engine's) agree with PyTorch fp32 on the first samples; when
        they do not, the part is moved to torch fp32 and the log says so."""
        from transferkit.engines.select import MIN_COSINE, PARITY_SAMPLES, TorchEngine

        n = min(PARITY_SAMPLES, len(samples))
        reference = TorchEngine(part.backbone, "fp32", self.device, channels_last=True)(
            part.backbone.collate(samples[:n]))
        cosine = float(torch.nn.functional.cosine_similarity(feats[:n].float(), reference.float(), dim=1,
                                                             eps=1e-12).min())
        if cosine >= MIN_COSINE[_engine(part).precision]:
            return True
        message = (f"first real batch: {_engine(part).label} disagrees with PyTorch fp32 on "
                   f"'{part.backbone.name}' (min cosine {cosine:.6f}); serving with torch fp32")
        log.warning(message)
        part.notes.append(message)
        part.engine = TorchEngine(part.backbone.for_inference().eval().to(self.device), "fp32", self.device,
                                  channels_last=True)
        return False

    def engine(self) -> JSONObject:
        """What `/metadata` shows: the engine of each backbone (chosen at start-up)."""
        info: JSONObject = {"device": str(self.device), "threads": torch.get_num_threads()}
        if not self.parts:
            return {"name": "torch", "torch": torch.__version__, "precision": self.precision, **info}
        chosen = [{"backbone": p.backbone.name, "engine": p.engine.engine if p.engine else None,
                   "precision": p.engine.precision if p.engine else None, "notes": p.notes} for p in self.parts]
        first = chosen[0]
        return {"name": first["engine"], "precision": first["precision"], "backbones": chosen, **info}
