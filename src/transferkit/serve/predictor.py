"""The model behind the server, split in the two halves a server needs.

- `prepare(item)`: one decoded input → one preprocessed sample (the backbone's own `load`), run in
  the request's thread, so a bad input fails its own request with a 4xx and never a batch;
- `predict(samples)`: a batch of samples → class probabilities, run by the micro-batcher on one
  model thread.

For probes and fine-tuned bundles the backbone is arranged for inference once, at start-up
(`Backbone.for_inference`: BatchNorm folded, channels_last), instead of per call as batch
extraction does. The precision is the one `transferkit predict` uses for the same bundle
(bf16 only where the hardware runs it natively, checked once against fp32 on the first batch).
Table models encode rows with their own encoders (`TabularTransferClassifier.features`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from transferkit.errors import InputError
from transferkit.serve.decode import RequestError


def predict_precision(model: Any) -> str:
    """The precision setting `model.features` extracts with (what `transferkit predict` uses):
    a fine-tuned network always predicts under 'auto' (`FinetunedClassifier.features`), the others
    under their `precision` parameter."""
    if getattr(model, "kind", None) == "finetuned":
        return "auto"
    return str(getattr(model, "precision", "auto"))


class Predictor:
    """Prepares inputs and predicts class probabilities for one loaded bundle."""

    def __init__(self, model: Any, *, precision: str | None = None) -> None:
        from transferkit.errors import ConfigError
        from transferkit.runtime import resolve_device, resolve_precision

        if precision not in (None, "auto", "bf16", "fp32"):
            raise ConfigError(f"--precision must be auto, bf16 or fp32; got {precision!r}")
        self.model = model
        self.modality = str(model.modality_)
        self.classes = [str(c) for c in model.classes_]
        self.columns: list[str] = []
        self.path_columns: list[str] = []
        self._lock = threading.Lock()  # one forward at a time, whoever calls
        if self.modality == "table":
            self.columns = [c for _, c in model.columns()]
            self.path_columns = list(model.path_columns())
            if precision is not None:
                model.precision = precision  # a runtime setting of table models (their encoders' extraction)
            self.device = resolve_device(getattr(model, "device", None))
            self.precision = str(model.precision)
            return
        self.device = resolve_device(getattr(model, "device", None))
        self.precision = resolve_precision(precision or predict_precision(model), self.device)
        self._checked = self.precision != "bf16"
        self.backbone = model.backbone_.for_inference().eval().to(self.device)
        self._load = self.backbone.sample_loader()
        pre = self.backbone.preprocess_config()
        # as `ImageTransform` does for files: a JPEG may decode at reduced scale down to this side
        self.jpeg_min_size = (int(pre["input_size"] / pre.get("crop_pct", 1.0))
                              if self.modality == "image" and "input_size" in pre else None)

    def prepare(self, item: Any, name: str) -> Any:
        """One input → what `predict` takes; `RequestError` (422) naming the input when unusable."""
        if self.modality == "table":
            return item  # rows were checked when parsed; cells the encoders cannot use are masked
        try:
            return self._load(item)
        except InputError as exc:
            raise RequestError(422, f"{name}: {exc}") from exc

    def predict(self, samples: Sequence[Any]) -> np.ndarray:
        """Class probabilities [len(samples), n_classes], columns in `classes` order."""
        with self._lock:
            if self.modality == "table":
                feats = self.model.features(list(samples), cache=False)
                return np.asarray(self.model.proba_from_features(feats.values), np.float64)
            values = self._forward(list(samples))
            return np.asarray(self.model.proba_from_features(values), np.float64)

    def _forward(self, samples: list[Any]) -> np.ndarray:
        from transferkit.features import BF16_MIN_COSINE
        from transferkit.runtime import autocast

        backbone = self.backbone
        x = backbone.to_batch_device(backbone.collate(samples), self.device)
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            with autocast(self.precision, self.device):
                feats = backbone.forward_features(x)
            if not self._checked:  # bf16 is trusted only once it agrees with fp32 (as extraction does)
                self._checked = True
                n = min(8, len(samples))
                head = x[:n] if isinstance(x, torch.Tensor) else {
                    k: v[:n] if isinstance(v, torch.Tensor) else v for k, v in x.items()}
                reference = backbone.forward_features(head).float()
                cosine = torch.nn.functional.cosine_similarity(feats[:n].float(), reference, dim=1)
                if float(cosine.min()) < BF16_MIN_COSINE:
                    self.precision = "fp32"
                    feats = backbone.forward_features(x)
        return feats.float().cpu().numpy()

    def engine(self) -> dict[str, Any]:
        return {"name": "torch", "torch": torch.__version__, "device": str(self.device), "precision": self.precision,
                "threads": torch.get_num_threads()}
