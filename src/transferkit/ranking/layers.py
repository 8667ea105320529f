"""Features of every layer of one backbone, for "which layer transfers best".

An intermediate feature map, pooled over its spatial positions, is the same kind of input to a
transferability estimator as the final embedding, so ranking layers is ranking candidates. To
extract once, `LayerFeatures` wraps a backbone as another backbone whose embedding is the
concatenation of every stage's pooled output plus the final pooled embedding; it goes through
the ordinary extraction and feature cache (under its own name), and `split` cuts the columns back
into one matrix per layer.

Stages come from timm's `forward_intermediates` (each stage's output, as in `features_only`);
for other backbones, from forward hooks on `layer_groups()` (each group's output, averaged over
every axis but batch and channel).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from transferkit.backbones.contract import Backbone
from transferkit.errors import BackboneError
from transferkit.jsontypes import JSONObject

FINAL = "final"


def _pool(t: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """[B, C, *spatial] → [B, C] by mean; [B, T, C] (sequence) → [B, C]; [B, C] unchanged."""
    if t.dim() == 2:
        return t
    if t.dim() == 3:
        return t.mean(dim=1)
    if channels_last:
        return t.mean(dim=tuple(range(1, t.dim() - 1)))
    return t.flatten(2).mean(dim=2)


class LayerFeatures(Backbone[torch.Tensor, torch.Tensor]):
    """A backbone whose embedding is [pooled stage 1 | … | pooled stage K | final embedding]."""

    def __init__(self, inner: Backbone[torch.Tensor, torch.Tensor]) -> None:
        super().__init__()
        self.inner = inner
        self.name = f"{inner.name}#layers"
        self.modality = inner.modality
        self.weights_id = inner.weights_id
        self._timm = hasattr(getattr(inner, "model", None), "forward_intermediates")
        self.layer_names, self.layer_dims = self._probe()
        self.num_features = int(sum(self.layer_dims))

    def _probe(self) -> tuple[list[str], list[int]]:
        """Run one dummy input to learn how many stages there are and their widths."""
        if self.inner.modality != "image":
            raise BackboneError(
                f"layer ranking needs an image backbone whose stages can be read; '{self.inner.name}' is "
                f"a {self.inner.modality} backbone. Rank whole backbones instead (drop --layers)."
            )
        size = int(self.inner.preprocess_config().get("input_size", 224))
        with torch.inference_mode():
            stages = self._stages(torch.zeros(1, 3, size, size))
        names = [f"stage{i + 1}" for i in range(len(stages))] + [FINAL]
        dims = [int(s.shape[1]) for s in stages] + [int(self.inner.num_features)]
        return names, dims

    def _stages(self, batch: torch.Tensor) -> list[torch.Tensor]:
        if self._timm:
            maps = self.inner.model.forward_intermediates(batch, intermediates_only=True)  # type: ignore[union-attr,operator]
            return [_pool(m) for m in maps]
        outputs: list[torch.Tensor] = []

        def hook(_m: nn.Module, _i: tuple[object, ...], out: object) -> None:
            t = out[0] if isinstance(out, tuple) else out
            if isinstance(t, torch.Tensor) and t.dim() >= 2:
                outputs.append(_pool(t.float()))

        groups = self.inner.layer_groups()[:-1] or self.inner.layer_groups()
        handles = [g.register_forward_hook(hook) for g in groups]
        try:
            self.inner.forward_features(batch)
        finally:
            for h in handles:
                h.remove()
        return outputs

    # -- the backbone contract, delegated -------------------------------------------------------
    def preprocess_config(self) -> JSONObject:
        return self.inner.preprocess_config()

    def load(self, item: object) -> torch.Tensor:
        return self.inner.load(item)

    def sample_loader(self) -> Callable[[object], torch.Tensor]:
        return self.inner.sample_loader()

    def collate(self, samples: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.inner.collate(samples)

    def layer_groups(self) -> list[nn.Module]:
        return self.inner.layer_groups()

    def forward_features(self, batch: torch.Tensor) -> torch.Tensor:
        if self._timm:
            model = self.inner.model
            final, maps = model.forward_intermediates(batch)  # type: ignore[union-attr,operator]
            pooled = [_pool(m) for m in maps]
            last = model.forward_head(final, pre_logits=True)  # type: ignore[union-attr,operator]
        else:
            pooled = self._stages(batch)
            last = self.inner.forward_features(batch)
        return torch.cat([p.float() for p in pooled] + [last.float()], dim=1)

    def split(self, values: np.ndarray) -> dict[str, np.ndarray]:
        """Columns of an extracted matrix, one matrix per layer (input order: stage1 … final)."""
        out: dict[str, np.ndarray] = {}
        start = 0
        for name, dim in zip(self.layer_names, self.layer_dims, strict=True):
            out[name] = values[:, start : start + dim]
            start += dim
        return out
