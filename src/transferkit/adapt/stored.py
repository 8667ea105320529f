"""The alignment a bundle holds, read back from its tensors, whichever kind it is."""

from __future__ import annotations

import torch

from transferkit.adapt.align import AlignModule, BlockAlignModule
from transferkit.adapt.latent import LatentAlignModule


def alignment_from_tensors(tensors: dict[str, torch.Tensor]
                           ) -> AlignModule | BlockAlignModule | LatentAlignModule | None:
    """The alignment a bundle holds (`align.*`, per block `align.parts.<i>.*`, or latent domains'
    `align.centroids` …), or None when it has none."""
    latent = LatentAlignModule.from_tensors(tensors)
    if latent is not None:
        return latent
    single = AlignModule.from_tensors(tensors)
    if single is not None:
        return single
    parts: list[AlignModule] = []
    while (part := AlignModule.from_tensors(tensors, prefix=f"align.parts.{len(parts)}.")) is not None:
        parts.append(part)
    return BlockAlignModule(parts) if parts else None
