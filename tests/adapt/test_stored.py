"""`adapt.stored.alignment_from_tensors`: a bundle's tensors give back whichever alignment was saved — one map,
one per feature block, or one per latent domain — and nothing for a bundle fitted without a target."""

from __future__ import annotations

import numpy as np
import torch

from transferkit.adapt import AlignModule, BlockAlignModule, alignment_from_tensors, fit_alignment
from transferkit.adapt.latent import LatentAlignModule, fit_latent_alignment


def saved(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {f"align.{k}": v for k, v in module.state_dict().items()}


def test_each_kind_of_alignment_is_read_back_as_it_was_saved() -> None:
    rng = np.random.default_rng(0)
    source = rng.normal(size=(200, 6))
    target = np.vstack([rng.normal(size=(40, 6)) + 2, rng.normal(size=(40, 6)) - 2])
    x = torch.from_numpy(target[:10].astype(np.float32))
    one = fit_alignment(source, target, "standardize")
    blocks = fit_alignment(source, target, "standardize", blocks=[2, 4])
    latent = fit_latent_alignment(source, target)
    assert one is not None and blocks is not None and latent is not None
    for fitted, kind in ((one, AlignModule), (blocks, BlockAlignModule), (latent, LatentAlignModule)):
        module = fitted.module()
        read = alignment_from_tensors({**saved(module), "head.weight": torch.zeros(3, 6)})
        assert isinstance(read, kind)
        torch.testing.assert_close(read(x), module(x))


def test_a_bundle_without_an_alignment_has_none() -> None:
    assert alignment_from_tensors({"head.weight": torch.zeros(3, 6), "head.bias": torch.zeros(3)}) is None
