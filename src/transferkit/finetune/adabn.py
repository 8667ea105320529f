"""AdaBN (Li, Wang, Shi, Liu & Hou, 2016): BatchNorm statistics re-estimated on the target domain.

AdaBN's idea: the network's weights hold what it learned; the BatchNorm statistics hold the domain.
Normalising the target's activations by the target's own statistics (where training normalised the
source's by the source's) removes the shift each layer sees, with no labels and no training.

Ours is the same rule written for a network whose running statistics need not be the source's
(fine-tuning keeps the pretrained statistics by default, `FinetuneConfig.bn_stats="frozen"`): each
BatchNorm layer is given running statistics under which the target's activations come out with the
per-channel mean and variance the source's had during training. With the layer's running statistics
(μ_r, σ_r²), the source's input statistics (μ_S, σ_S²) and the target's (μ_T, σ_T²):

    σ_new = σ_T · σ_r / σ_S
    μ_new = μ_T − (μ_S − μ_r) · σ_T / σ_S

so (x_T − μ_new) / σ_new has mean (μ_S − μ_r)/σ_r and std σ_S/σ_r, as the source had. When the
running statistics are the source's (μ_r = μ_S, σ_r = σ_S), this is AdaBN exactly: μ_new = μ_T,
σ_new = σ_T. Layers are adapted together in one pass over the target: while it runs, each layer
already normalises its batch this way (with the batch's statistics), so a deeper layer's statistics
are those it will see once the layers below it are adapted. Statistics are pooled exactly over
inputs (sums, not a moving average). Both passes are capped (`max_inputs`, a seeded subsample).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NotRequired, TypedDict, TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

if TYPE_CHECKING:
    from transferkit.backbones.contract import Backbone

T = TypeVar("T")

#: inputs of each domain AdaBN reads at most (a seeded subsample): enough for per-channel statistics
MAX_INPUTS = 2048


@dataclass
class _Moments:
    """Per-channel sums of a layer's inputs, for exact pooled mean and (biased) variance."""

    total: torch.Tensor
    squares: torch.Tensor
    count: int = 0

    @classmethod
    def empty(cls, channels: int) -> _Moments:
        return cls(torch.zeros(channels, dtype=torch.double), torch.zeros(channels, dtype=torch.double))

    @classmethod
    def of(cls, x: torch.Tensor) -> _Moments:
        """The sums of one batch [B, C, …] (on the CPU, in double precision)."""
        dims = [d for d in range(x.dim()) if d != 1]
        xf = x.detach().double()
        return cls(xf.sum(dims).cpu(), (xf * xf).sum(dims).cpu(), x.numel() // x.shape[1])

    def add(self, batch: _Moments) -> None:
        self.total += batch.total
        self.squares += batch.squares
        self.count += batch.count

    def mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.total / max(self.count, 1)
        return mean, (self.squares / max(self.count, 1) - mean * mean).clamp(min=0.0)


def bn_layers(model: nn.Module) -> list[tuple[str, _BatchNorm]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _BatchNorm) and m.track_running_stats
            and m.running_mean is not None and m.running_var is not None]


@torch.no_grad()
def input_statistics(model: nn.Module, batches: Iterable[object], forward: Callable[[object], object]
                     ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each BatchNorm layer's per-channel input mean and variance over `batches`, the network in eval mode."""
    layers = bn_layers(model)
    moments = {n: _Moments.empty(m.num_features) for n, m in layers}
    hooks = [m.register_forward_pre_hook(lambda _m, inp, n=n: moments[n].add(_Moments.of(inp[0]))) for n, m in layers]
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            forward(batch)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {n: mo.mean_var() for n, mo in moments.items() if mo.count}


def _adapted(mu_t: torch.Tensor, var_t: torch.Tensor, source: tuple[torch.Tensor, torch.Tensor],
             running: tuple[torch.Tensor, torch.Tensor], eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The module's rule: the running mean and variance under which inputs with the target's statistics
    (μ_T, σ_T²) come out as the source's (μ_S, σ_S²) did under the `running` ones (μ_r, σ_r²)."""
    (mu_s, var_s), (mu_r, var_r) = source, running
    sd_t, sd_s, sd_r = (var_t + eps).sqrt(), (var_s + eps).sqrt(), (var_r + eps).sqrt()
    sd_new = sd_t * sd_r / sd_s
    return mu_t - (mu_s - mu_r) * sd_t / sd_s, (sd_new * sd_new - eps).clamp(min=0.0)


def _set_running(module: _BatchNorm, mean: torch.Tensor, var: torch.Tensor) -> None:
    running_mean, running_var = module.running_mean, module.running_var
    assert running_mean is not None and running_var is not None  # bn_layers keeps only layers that track them
    running_mean.copy_(mean.to(running_mean))
    running_var.copy_(var.to(running_var))


class AdaBNRecord(TypedDict):
    """What AdaBN changed: the BatchNorm layers re-estimated, and the mean absolute change of their running
    means and standard deviations (absent when the network has no BatchNorm layer: `layers` is 0)."""

    layers: int
    mean_shift: NotRequired[float]
    std_shift: NotRequired[float]


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, source_batches: Iterable[object], target_batches: Iterable[object],
                    forward: Callable[[object], object]) -> AdaBNRecord:
    """Re-estimate every BatchNorm layer's running statistics for the target (see the module's rule).

    `forward(batch)` runs the network on one batch (moving it to the device). Returns what changed:
    the layers adapted and the mean absolute change of their running means and standard deviations.
    """
    layers = bn_layers(model)
    if not layers:
        return {"layers": 0}
    source = input_statistics(model, source_batches, forward)
    moments = {n: _Moments.empty(m.num_features) for n, m in layers}
    old = {n: (m.running_mean.detach().double().cpu().clone(),  # type: ignore[union-attr]
               m.running_var.detach().double().cpu().clone()) for n, m in layers}  # type: ignore[union-attr]

    def recolour(name: str, module: _BatchNorm) -> Callable[..., None]:
        """Before the layer runs on a target batch: its running statistics set to the rule's for this batch's
        own statistics, so that the layer's own forward — whatever follows the normalisation in it (timm's
        `BatchNormAct2d` applies its activation there) — normalises the batch as it will once adapted."""
        def hook(_m: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
            batch = _Moments.of(inp[0])
            moments[name].add(batch)
            _set_running(module, *_adapted(*batch.mean_var(), source[name], old[name], module.eps))
        return hook

    hooks = [m.register_forward_pre_hook(recolour(n, m)) for n, m in layers if n in source]
    was_training = model.training
    model.eval()
    try:
        for batch in target_batches:
            forward(batch)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
        for name, module in layers:  # the statistics the layers had, until the pooled ones are set below
            _set_running(module, *old[name])
    moved_mean, moved_std = [], []
    for name, module in layers:
        if name not in source or not moments[name].count:
            continue
        mu_new, var_new = _adapted(*moments[name].mean_var(), source[name], old[name], module.eps)
        _set_running(module, mu_new, var_new)
        mu_r, var_r = old[name]
        moved_mean.append(float((mu_new - mu_r).abs().mean()))
        moved_std.append(float(((var_new + module.eps).sqrt() - (var_r + module.eps).sqrt()).abs().mean()))
    return {"layers": len(moved_mean), "mean_shift": float(np.mean(moved_mean)) if moved_mean else 0.0,
            "std_shift": float(np.mean(moved_std)) if moved_std else 0.0}


def item_batches(backbone: Backbone, items: Sequence[object], batch_size: int) -> Iterator[object]:
    """Collated batches of `items` with the backbone's (evaluation) preprocessing; unreadable inputs skipped."""
    from transferkit.errors import InputError

    load = backbone.sample_loader()
    samples: list[object] = []
    for item in items:
        try:
            samples.append(load(item))
        except InputError:
            continue
        if len(samples) == batch_size:
            yield backbone.collate(samples)
            samples = []
    if samples:
        yield backbone.collate(samples)


def subsample(items: Sequence[T], limit: int, seed: int) -> list[T]:
    """At most `limit` of `items`, a seeded choice in their order."""
    if len(items) <= limit:
        return list(items)
    keep = np.sort(np.random.default_rng(seed).choice(len(items), size=limit, replace=False))
    return [items[i] for i in keep]
