"""`transferkit export`: a trained image model (probe or fine-tuned) as one ONNX graph, checked against PyTorch.

The graph takes uint8 images [B, 3, H, W] (resized and cropped as the bundle's preprocessing says)
and returns class probabilities: normalisation, backbone, head and softmax all inside, so the
runner (`transferkit.engines.exported`) needs only PIL, numpy and onnxruntime. Before anything is
kept, the same inputs go through PyTorch and ONNX Runtime; a largest difference in probabilities
above `MAX_PROBABILITY_DIFFERENCE` is an error and nothing is written. `export.json` records the
sha256 of the graph (and of itself), so that a file changed afterwards is never used.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from transferkit.engines.exported import EXPORT_FILE, GRAPH_FILE, bundle_digest, is_export, seal_record
from transferkit.engines.onnx_graph import export_onnx
from transferkit.engines.run import open_graph
from transferkit.errors import ConfigError, EngineError
from transferkit.jsontypes import JSONObject

if TYPE_CHECKING:
    from PIL import Image

    from transferkit.backbones.contract import Backbone
    from transferkit.backbones.image import TimmImageBackbone
    from transferkit.estimators.transfer_estimator import TransferEstimator

    #: what the parity check reads as an image
    ImageInput = str | Path | Image.Image

MAX_PROBABILITY_DIFFERENCE = 1e-4


class _Probabilities(nn.Module):
    """uint8 images → probabilities: the image backbone's own normalisation, the model's features
    (a probe's backbone, or a fine-tuned network's logits), its head, softmax."""

    def __init__(self, backbone: Backbone, head: nn.Module, normalize: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.backbone, self.head, self.normalize = backbone, head, normalize

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_features(self.normalize(images))
        return torch.softmax(self.head(features.float()).float(), dim=1)


def _image_backbone(model: TransferEstimator) -> TimmImageBackbone | None:
    """The timm image backbone under a probe or a fine-tuned network, or None."""
    from transferkit.backbones.image import TimmImageBackbone
    from transferkit.finetune.model import LogitsBackbone

    backbone = getattr(model, "backbone_", None)
    if isinstance(backbone, LogitsBackbone):
        backbone = backbone.inner.backbone
    return backbone if isinstance(backbone, TimmImageBackbone) else None


@dataclass
class ExportReport:
    folder: Path
    max_difference: float
    n_checked: int
    checked_on: str


def export_model(run: str | Path, out: str | Path | None = None, *, samples: Sequence[ImageInput] = (),
                 overwrite: bool = False, tamper: Callable[[Path], object] | None = None) -> ExportReport:
    """Export the bundle at `run` to `out` (default RUN/onnx); parity on `samples` (else generated
    images). `tamper(path)` is for tests: it may change the graph before the parity check."""
    from transferkit.estimators.load import load

    model = load(run)
    folder = Path(out) if out is not None else Path(run) / "onnx"
    image = _exportable_image_backbone(model, run)
    backbone = model.backbone_
    if folder.exists() and not (overwrite and is_export(folder)):
        raise ConfigError(f"{folder} exists; choose another --out"
                          + (", or --overwrite (it is an export)" if is_export(folder) else
                             " (it is not an export transferkit wrote, so it is never overwritten)"))
    config = image.preprocess_config()
    size = int(config["input_size"])
    normalize = image.transform.normalize
    module = _Probabilities(backbone, model.scoring_head(), normalize).eval()  # alignment inside
    arrays, checked_on = _parity_inputs(samples, config, size)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.export-"))
    try:
        example = {"images": torch.zeros(2, 3, size, size, dtype=torch.uint8)}
        export_onnx(module, example, staging / GRAPH_FILE, dynamic_axes={"images": {0: "batch"}},
                    output_names=("probabilities",))
        if tamper is not None:
            tamper(staging / GRAPH_FILE)
        difference = _parity(model, module, staging / GRAPH_FILE, arrays, checked_on)
        meta = {"format": "onnx", "input": "images", "labels": [str(c) for c in model.classes_],
                "preprocess": config, "backbone": backbone.name, "estimator": model.kind,
                "source": str(Path(run).resolve()), "bundle_weights_sha256": bundle_digest(run),
                "parity": {"max_probability_difference": difference, "checked_on": checked_on}}
        meta = seal_record(meta, staging)  # the sha256 of every file, checked before each use
        (staging / EXPORT_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        _publish(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportReport(folder, difference, len(arrays), checked_on)


def _exportable_image_backbone(model: TransferEstimator, run: str | Path) -> TimmImageBackbone:
    """The image backbone of a model `export` can write as one graph; `ConfigError` for any other model."""
    from transferkit.estimators.finetuned import FinetunedClassifier
    from transferkit.estimators.probe import TransferClassifier

    image = _image_backbone(model)
    if not isinstance(model, (TransferClassifier, FinetunedClassifier)) or image is None:
        kind = str(getattr(model, "kind", type(model).__name__))
        raise ConfigError(f"transferkit export writes image models (a timm backbone + head, probed or fine-tuned) "
                          f"for now; {run} is {'an' if kind[:1] in 'aeiou' else 'a'} {kind} model of "
                          f"{getattr(model, 'modality_', '?')} data")
    if getattr(model, "tta", 0):
        raise ConfigError("a model that averages test-time views (--tta) cannot be exported as one graph yet")
    return image


def _parity_inputs(samples: Sequence[ImageInput], config: JSONObject, size: int) -> tuple[np.ndarray, str]:
    """The images the graph is checked on (up to 16 of `samples`, else 8 random ones) and what they are."""
    if samples:
        from transferkit.data.images import image_array

        arrays = np.stack([image_array(s, config) for s in samples[:16]])
        return arrays, f"{len(arrays)} of the given inputs"
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (8, 3, size, size), dtype=np.uint8),
            "8 random images (give DATA to check on real inputs)")


def _parity(model: TransferEstimator, module: _Probabilities, graph: Path, arrays: np.ndarray,
            checked_on: str) -> float:
    """The largest probability difference between the exported graph, the module exported and the estimator's
    own road on `arrays`; `EngineError` when over `MAX_PROBABILITY_DIFFERENCE` (or not finite)."""
    with torch.inference_mode():
        reference = module(torch.from_numpy(arrays)).numpy()
        # the graph must be the model: the same inputs through the estimator's own road
        own = model.proba_from_features(module.backbone.forward_features(module.normalize(torch.from_numpy(arrays)))
                                        .float().numpy())
    exported = open_graph(graph, "onnxruntime")({"images": arrays})
    difference = float(max(np.abs(exported - reference).max(), np.abs(reference - own).max()))
    if not np.isfinite(difference) or difference > MAX_PROBABILITY_DIFFERENCE:
        raise EngineError(f"the exported graph disagrees with PyTorch: largest probability difference "
                          f"{difference:.3g} > {MAX_PROBABILITY_DIFFERENCE:g} on {checked_on}; nothing was written")
    return difference


def _publish(staging: Path, folder: Path) -> None:
    """Move the checked export into place; an earlier export there (ours: checked before) is replaced whole."""
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        os.replace(folder, old)
        os.replace(staging, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, folder)
