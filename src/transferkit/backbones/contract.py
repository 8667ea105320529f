"""The backbone contract: one interface for every pretrained model of every modality.

Modelled on timm's (`num_features`, `forward_features`, `group_matcher`), widened to text and
audio. Training, feature extraction, ranking and bundles only ever talk to this interface.

The preprocessing is split in two, as a `Dataset` transform plus a `collate_fn`:

- `load(item)` turns one raw input (a path, a PIL image, a string, a waveform) into one
  preprocessed sample. It raises `InputError` for an input that cannot be read, so callers can
  skip and count it. It must be picklable (it runs in DataLoader workers).
- `collate(samples)` turns a list of samples into the batch `forward_features` takes.

`preprocess_config()` is a JSON-able description of both, saved in bundles and part of every
feature-cache key, so that predict time preprocesses exactly as training did.

For inference engines (ONNX Runtime, OpenVINO), `graph_parts()` splits `forward_features` into a
tensor-only core that exports to ONNX (the network) and the torch code around it (spectrograms,
partials, chunk averaging): `finish(module(*prepare(batch)))` computes what `forward_features` does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypedDict, TypeVar, cast

import numpy as np
import torch
from torch import nn

from transferkit.errors import BackboneError
from transferkit.jsontypes import JSONObject

Modality = Literal["image", "text", "audio"]
#: one preprocessed sample: what a family's `load` returns and only its `collate` reads
SampleT = TypeVar("SampleT")
#: a collated batch: what a family's `collate` returns and only its `forward_features` reads (a tensor for
#: images, a dict of tensors for text and audio, a tuple for a concatenation)
BatchT = TypeVar("BatchT")
#: what a family's `GraphParts.prepare` hands to its own `finish` (None, partial owners, the batch)
ContextT = TypeVar("ContextT")


def random_weights_id(seed: int, architecture: str) -> str:
    """`weights_id` of a random initialisation: "random-init:<seed>:<architecture>"."""
    return f"random-init:{seed}:{architecture}"


def same_weights(saved: str, backbone: Backbone) -> bool:
    """True when `backbone` has the weights a bundle recorded as `saved`.

    Bundles written before random initialisations named their architecture recorded only
    "random-init:<seed>"; for those the seed is all that can be checked.
    """
    current = backbone.weights_id
    if saved == current:
        return True
    legacy = saved.startswith("random-init:") and saved.count(":") == 1
    return legacy and current.startswith(saved + ":")


def _no_context(batch: object) -> tuple[dict[str, torch.Tensor], None]:
    if not isinstance(batch, torch.Tensor):
        raise BackboneError(f"a one-tensor graph got a batch of {type(batch).__name__}")
    return {"input": batch}, None


def _rows_are_features(rows: torch.Tensor, context: object) -> torch.Tensor:
    return rows


class InputNotes(TypedDict, total=False):
    """What preprocessing did to the inputs that the user should hear about (`Backbone.input_notes`), kept in
    the fit report and the summary. Text backbones: the long-text policy (`truncate` or `chunk`), the
    model's window in tokens, and how many texts were cut. Other modalities take every input whole: {}."""

    long_text: str
    max_tokens: int
    truncated_texts: int


@dataclass(frozen=True)
class GraphParts(Generic[BatchT, ContextT]):
    """The exportable core of a backbone's `forward_features`, and the torch code around it.

    `prepare(batch)` turns a collated batch into the core's named input tensors (plus a context
    for `finish`); `module(*inputs, in input_names order)` → rows [R, D]; `finish(rows, context)`
    → features [B, num_features]. The defaults fit a backbone whose batch is one tensor and whose
    `forward_features` is the whole network. `dynamic_axes` names the axes that vary between
    batches (batch size, sequence length); the others are fixed by `example` (a collated batch).
    """

    module: nn.Module
    example: BatchT
    prepare: Callable[[BatchT], tuple[dict[str, torch.Tensor], ContextT]]
    finish: Callable[[torch.Tensor, ContextT], torch.Tensor]
    input_names: tuple[str, ...] = ("input",)
    dynamic_axes: Mapping[str, Mapping[int, str]] = field(default_factory=lambda: {"input": {0: "batch"}})
    #: the named input arrays of some rows of a batch (a run: engines run a batch a few rows at a time) cut to
    #: what those rows need, for the same rows out (texts: the padding past the run's longest text); None: as is
    trim: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]] | None = None

    def example_inputs(self) -> dict[str, torch.Tensor]:
        inputs, _ = self.prepare(self.example)
        return {name: inputs[name] for name in self.input_names}


class ForwardFeatures(nn.Module):
    """`backbone.forward_features` as a module of one tensor (what an engine exports)."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)


class Backbone(nn.Module, ABC, Generic[SampleT, BatchT]):
    """A pretrained encoder that maps a batch of raw inputs to pooled embeddings [B, num_features].

    Generic in its sample and batch types: a family says what its `load` makes and its `collate`
    batches (`Backbone[torch.Tensor, torch.Tensor]` for images); code that takes any backbone writes
    `Backbone` and only hands one method's result to the next.
    """

    name: str
    modality: Modality
    num_features: int
    #: sha256 of the weight file ("random-init:<seed>:<architecture>" for random weights); part of cache keys.
    weights_id: str
    #: the pretrained classifier on top of the features (for LEEP / NCE), if the source kept one.
    source_head: nn.Module | None
    #: labels of `source_head`'s outputs, when known (e.g. the ImageNet class names).
    source_labels: list[str] | None
    #: None: `forward_features` is a torch network that engines may export (`graph_parts`). Else
    #: the engine the backbone runs on by itself ("onnxruntime" for a shipped ONNX graph, "numpy"
    #: for a hand-made featurizer): extraction then runs it as it is, whatever engine is asked for.
    native_engine: str | None = None

    def __init__(self) -> None:
        super().__init__()
        # Set here, not as class attributes: nn.Module registers sub-modules in _modules, and a
        # class-level default would shadow them.
        self.source_head = None
        self.source_labels = None

    # -- preprocessing ------------------------------------------------------------------------
    @abstractmethod
    def preprocess_config(self) -> JSONObject:
        """JSON-able description of `load` + `collate` (size, mean/std, tokenizer, sample rate…)."""

    @abstractmethod
    def load(self, item: object) -> SampleT:
        """One raw input → one preprocessed sample; raises `InputError` if it cannot be read."""

    def sample_loader(self) -> Callable[[object], SampleT]:
        """A picklable `load` for DataLoader workers (override when `self.load` would pickle weights)."""
        return self.load

    def collate(self, samples: Sequence[SampleT]) -> BatchT:
        """Samples → batch; the default stacks one-tensor samples (families of other batches override it)."""
        tensors: list[torch.Tensor] = [s for s in samples if isinstance(s, torch.Tensor)]
        if len(tensors) != len(samples):
            raise BackboneError(f"backbone '{self.name}' stacks tensor samples; override collate() for others")
        return cast(BatchT, torch.stack(tensors))

    def preprocess(self, items: Sequence[object]) -> BatchT:
        """Raw inputs → batch (convenience for small calls; extraction streams through a loader)."""
        return self.collate([self.load(item) for item in items])

    # -- forward ------------------------------------------------------------------------------
    @abstractmethod
    def forward_features(self, batch: BatchT) -> torch.Tensor:
        """Batch → pooled embeddings [B, num_features]."""

    def forward_feature_map(self, batch: BatchT) -> torch.Tensor:
        """Unpooled features (e.g. [B, C, H, W]) for Keras-style flatten heads."""
        raise BackboneError(
            f"backbone '{self.name}' has no unpooled feature map; use a head without 'flatten'"
        )

    def forward(self, batch: BatchT) -> torch.Tensor:
        return self.forward_features(batch)

    @abstractmethod
    def layer_groups(self) -> list[nn.Module]:
        """Module groups ordered from input to output, for gradual unfreezing and layer-wise LRs."""

    def to_batch_device(self, batch: BatchT, device: torch.device) -> BatchT:
        """Move a collated batch to a device (tensors, or dicts of tensors for tokenised text)."""
        if isinstance(batch, torch.Tensor):
            return cast(BatchT, batch.to(device, non_blocking=True))
        if isinstance(batch, dict):
            return cast(BatchT, {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                                 for k, v in batch.items()})
        return batch

    # -- inference engines --------------------------------------------------------------------
    def example_batch(self) -> BatchT:
        """A small collated batch of the shapes `forward_features` takes (for export and checks)."""
        raise BackboneError(
            f"backbone '{self.name}' ({type(self).__name__}) gives no example batch, so it cannot be "
            "exported for onnxruntime/openvino; use engine='torch' or implement example_batch()"
        )

    def graph_parts(self) -> GraphParts[BatchT, Any]:
        """The part of `forward_features` an engine runs as an exported graph (see `GraphParts`).

        The default exports the whole `forward_features` of a one-tensor batch with a dynamic
        batch axis; families whose forward has data-dependent torch code around the network
        (audio partials, text chunks) override this."""
        example = self.example_batch()
        if not isinstance(example, torch.Tensor):
            raise BackboneError(
                f"backbone '{self.name}' batches as {type(example).__name__}, not one tensor: it must "
                "override graph_parts() to say which tensors the exported graph takes"
            )
        return GraphParts(module=ForwardFeatures(self).eval(), example=example, prepare=_no_context,
                          finish=_rows_are_features)

    def batch_order(self, items: Sequence[object]) -> list[int] | None:
        """The order in which to batch `items` (e.g. by length, so padding is short), or None to
        keep input order. Extraction puts every result back at its input's place."""
        return None

    def for_inference(self) -> Backbone[SampleT, BatchT]:
        """A copy arranged for fast frozen inference (e.g. BatchNorm folded into convolutions), or
        `self` when there is nothing to gain. Never changes `self`: it may be fine-tuned later."""
        return self

    def parts(self) -> list[Backbone]:
        """The backbones whose features this one puts side by side (itself, unless a concatenation):
        extraction runs and caches each part on its own."""
        return [self]

    def feature_blocks(self) -> list[int]:
        """Widths of the blocks of `forward_features` that a head should weigh equally (one block here)."""
        return [int(self.num_features)]

    def input_notes(self, items: Sequence[object]) -> InputNotes:
        """What preprocessing did to `items` that the user should hear about, as counts (text: how
        many were cut at the model's window). Empty for backbones that take every input whole."""
        return {}

    def apply_preprocess_config(self, config: JSONObject) -> None:
        """Use a saved preprocessing (from a bundle). Families that can change theirs override this;
        the default accepts only the preprocessing the backbone already has."""
        if config != self.preprocess_config():
            raise BackboneError(
                f"backbone '{self.name}' cannot reproduce the saved preprocessing {config}; "
                f"it preprocesses as {self.preprocess_config()}"
            )

    def describe(self) -> JSONObject:
        """Reference written into bundles: enough to recreate this backbone and check its weights."""
        return {
            "name": self.name,
            "modality": self.modality,
            "num_features": self.num_features,
            "weights_id": self.weights_id,
            "preprocess": self.preprocess_config(),
        }
